// A loopback HTTP forwarder that adds `Authorization: Bearer $TOOLGATE_KEY`
// to every request, because the conformance suite cannot send a header and
// `policyc mcp-proxy --listen` requires a service key. Everything else (method,
// path, the other headers including Host and Origin, bodies, SSE streams in
// both directions) is piped through unchanged.
//
//   TOOLGATE_KEY=... node add-bearer.mjs LISTEN_PORT TARGET_PORT
import http from "node:http";

const [listenPort, targetPort] = process.argv.slice(2).map(Number);
const key = process.env.TOOLGATE_KEY;
if (!listenPort || !targetPort || !key) {
  console.error("usage: TOOLGATE_KEY=... node add-bearer.mjs LISTEN_PORT TARGET_PORT");
  process.exit(2);
}
const agent = new http.Agent({ keepAlive: true });
http
  .createServer((req, res) => {
    const headers = { ...req.headers, authorization: `Bearer ${key}` };
    const up = http.request(
      { host: "127.0.0.1", port: targetPort, method: req.method, path: req.url, headers, agent },
      (upRes) => {
        res.writeHead(upRes.statusCode, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on("error", (e) => {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(`add-bearer: ${e.message}`);
    });
    req.pipe(up);
  })
  .listen(listenPort, "127.0.0.1", () => console.error(`add-bearer: listening on ${listenPort}`));

//! `policyc serve` and `policyc keys`: thin wrappers over toolgate-server.

use crate::cli::{KeysCommand, KeysFile, ServeArgs};
use crate::Exit;
use std::path::PathBuf;
use toolgate_runtime::host::keys::{self, Key, Role};
use toolgate_server::{Settings, DEFAULT_DATA};

/// `policyc serve`.
pub(crate) fn serve(args: ServeArgs) -> Exit {
    let flags = Settings {
        policy: args.policy,
        data: args.data,
        listen: args.listen,
        keys: args.keys,
        shadow_policy: args.shadow_policy,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        insecure_listen: args.insecure_listen.then_some(true),
        max_body: args.max_body,
        timeout: args.timeout,
        concurrency: args.concurrency,
        header_timeout: args.header_timeout,
        max_connections: args.max_connections,
        fsync: args.fsync,
        result_timeout: args.result_timeout,
        store: args.state.store,
        store_prefix: args.state.store_prefix,
        redis_down: args.state.redis_down,
        replica_id: args.state.replica_id,
    };
    let settings = match &args.config {
        Some(path) => match Settings::from_file(path) {
            Ok(file) => flags.over(file),
            Err(e) => return fail(&e),
        },
        None => flags,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let Ok(rt) = rt else {
        eprintln!("error: cannot start the async runtime");
        return Exit::Usage;
    };
    match rt.block_on(toolgate_server::run(settings)) {
        Ok(()) => Exit::Ok,
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> Exit {
    eprintln!("error: {e}");
    Exit::Usage
}

fn keys_path(file: &KeysFile) -> PathBuf {
    match (&file.keys, &file.data) {
        (Some(k), _) => k.clone(),
        (None, Some(d)) => d.join("keys.toml"),
        (None, None) => PathBuf::from(DEFAULT_DATA).join("keys.toml"),
    }
}

/// `policyc keys ...`.
pub(crate) fn keys(cmd: KeysCommand) -> Exit {
    let result = match cmd {
        KeysCommand::Add {
            name,
            role,
            tenants,
            envs,
            agents,
            groups,
            file,
        } => add(
            &keys_path(&file),
            name,
            &role,
            tenants,
            envs,
            agents,
            groups,
        ),
        KeysCommand::List { json, file } => list(&keys_path(&file), json),
        KeysCommand::Revoke { name, file } => {
            let path = keys_path(&file);
            keys::revoke(&path, &name)
                .map(|()| println!("revoked `{name}` in {}", path.display()))
                .map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => fail(&e),
    }
}

fn add(
    path: &std::path::Path,
    name: String,
    role: &str,
    tenants: Vec<String>,
    envs: Vec<String>,
    agents: Vec<String>,
    groups: Vec<String>,
) -> Result<(), String> {
    let role = match role {
        "service" => Role::Service,
        "approver" => Role::Approver,
        "operator" => Role::Operator,
        other => {
            return Err(format!(
                "`--role {other}`: the roles are `service`, `approver` and `operator`"
            ))
        }
    };
    let key = Key {
        name: name.clone(),
        role,
        tenants,
        envs,
        agents,
        groups,
        created_at: toolgate_runtime::host::now_ms(),
        sha256: String::new(),
    };
    let secret = keys::add(path, key).map_err(|e| e.to_string())?;
    println!(
        "created {} key `{name}` in {}; its secret is shown once:",
        role.as_str(),
        path.display()
    );
    println!("{secret}");
    Ok(())
}

fn list(path: &std::path::Path, json: bool) -> Result<(), String> {
    let file = keys::read(path).map_err(|e| e.to_string())?;
    let public: Vec<Key> = file.keys.iter().map(Key::public).collect();
    if json {
        let text = serde_json::to_string_pretty(&public).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }
    let all = |v: &[String]| {
        if v.is_empty() {
            "*".to_string()
        } else {
            v.join(",")
        }
    };
    println!(
        "{:<20} {:<9} {:<16} {:<12} {:<16} GROUPS",
        "NAME", "ROLE", "TENANTS", "ENVS", "AGENTS"
    );
    for k in &public {
        println!(
            "{:<20} {:<9} {:<16} {:<12} {:<16} {}",
            k.name,
            k.role.as_str(),
            all(&k.tenants),
            all(&k.envs),
            all(&k.agents),
            if k.groups.is_empty() {
                "-".to_string()
            } else {
                k.groups.join(",")
            }
        );
    }
    Ok(())
}

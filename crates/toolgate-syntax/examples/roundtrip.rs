//! Prints a file canonically, or its syntax errors (a debugging aid).
fn main() -> std::process::ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        return std::process::ExitCode::from(2);
    };
    let Ok(src) = std::fs::read_to_string(&path) else {
        return std::process::ExitCode::from(2);
    };
    let parsed = toolgate_syntax::parse(&src);
    for e in &parsed.errors {
        eprintln!("{e:?}");
    }
    print!("{}", toolgate_syntax::print(&parsed.file, &src));
    std::process::ExitCode::SUCCESS
}

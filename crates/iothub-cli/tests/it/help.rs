//! Every command's `--help` carries an example: the test walks the whole
//! command tree through the binary's own help output.

use crate::iothub;

/// Subcommand names listed under `Commands:` in a help text (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // Wrapped descriptions continue on deeper-indented lines.
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_command_help_shows_an_example() {
    let mut pending: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen = 0;
    let mut missing = Vec::new();
    while let Some(path) = pending.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let run = iothub(&args);
        assert_eq!(run.code, Some(0), "{args:?}: {run:?}");
        seen += 1;
        if !run.stdout.contains("Example") {
            missing.push(path.join(" "));
        }
        for sub in subcommands(&run.stdout) {
            let mut child = path.clone();
            child.push(sub);
            pending.push(child);
        }
    }
    // sas, device (5), hub (4+), demo, simulate, completions, emulator and the root at least.
    assert!(seen >= 15, "walked only {seen} commands");
    assert!(missing.is_empty(), "no example in the help of: {missing:?}");
}

#[test]
fn the_walk_finds_nested_commands() {
    let run = iothub(&["--help"]);
    let top = subcommands(&run.stdout);
    for name in ["sas", "device", "hub", "demo", "simulate", "completions"] {
        assert!(top.iter().any(|t| t == name), "{name} not in {top:?}");
    }
    assert!(subcommands(&iothub(&["device", "--help"]).stdout).contains(&"send".to_owned()));
}

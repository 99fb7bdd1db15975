//! `iothub completions bash|zsh|fish`.

use crate::iothub;

#[test]
fn bash_completion_knows_the_subcommands_and_flags() {
    let run = iothub(&["completions", "bash"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("complete -F _iothub"), "{}", run.stdout);
    for word in [
        "simulate",
        "demo",
        "device",
        "--hub-connection-string",
        "--devices",
    ] {
        assert!(run.stdout.contains(word), "{word} missing");
    }
}

#[test]
fn zsh_and_fish_scripts_are_generated() {
    let zsh = iothub(&["completions", "zsh"]);
    assert_eq!(zsh.code, Some(0));
    assert!(zsh.stdout.starts_with("#compdef iothub"), "{}", zsh.stdout);
    let fish = iothub(&["completions", "fish"]);
    assert_eq!(fish.code, Some(0));
    assert!(
        fish.stdout.contains("complete -c iothub"),
        "{}",
        fish.stdout
    );
}

#[test]
fn bash_script_is_valid_shell() {
    let run = iothub(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iothub.bash");
    std::fs::write(&path, &run.stdout).unwrap();
    let status = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .status()
        .expect("bash runs");
    assert!(status.success());
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let run = iothub(&["completions", "tcsh"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("possible values"), "{}", run.stderr);
}

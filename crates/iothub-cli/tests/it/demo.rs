//! `iothub demo --once`: the transcript a newcomer sees first, every step checked.

use crate::iothub;

#[test]
fn demo_once_prints_every_step_and_exits_zero() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let run = iothub(&["demo", "--once", "--data-dir", dir]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let out = &run.stdout;
    let line = |label: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(&format!("✔ {label}")))
            .unwrap_or_else(|| panic!("no ✔ {label} line in:\n{out}"))
            .to_owned()
    };
    assert!(line("telemetry").contains(r#"{"temperature":"#), "{out}");
    assert!(line("c2d").contains("completed"), "{out}");
    let twin = line("twin");
    assert!(twin.contains("ac 200") && twin.contains("av 2"), "{twin}");
    let method = line("method");
    assert!(
        method.contains("getMaxMinReport answered 200") && method.contains("\"maxTemp\""),
        "{method}"
    );
    assert!(!out.contains('✘'), "{out}");
    assert!(out.contains("dashboard  http://127.0.0.1:"), "{out}");
    // Not a terminal: no colour codes.
    assert!(!out.contains('\u{1b}'), "{out}");
    // The kept data dir lets the other commands find the (now stopped) emulator's records.
    assert!(data.path().join("endpoints.json").exists());
    assert!(data.path().join("hub.db").exists());
}

#[test]
fn demo_once_runs_again_on_a_kept_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    assert_eq!(iothub(&["demo", "--once", "--data-dir", dir]).code, Some(0));
    let again = iothub(&["demo", "--once", "--data-dir", dir]);
    assert_eq!(again.code, Some(0), "{again:?}");
    // The desired version keeps counting in the persisted twin.
    assert!(again.stdout.contains("av 3"), "{}", again.stdout);
}

#[test]
fn demo_once_exits_one_when_a_step_times_out() {
    let run = iothub(&["demo", "--once", "--step-timeout", "0"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("✘ c2d"), "{}", run.stdout);
    assert!(
        run.stdout.contains("no answer within 0 s"),
        "{}",
        run.stdout
    );
}

#[test]
fn demo_once_json_lists_the_steps() {
    let run = iothub(&["--json", "demo", "--once"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    // --json: stdout is the JSON document alone.
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let steps: Vec<_> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_owned(),
                s["ok"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("telemetry", true),
            ("c2d", true),
            ("twin", true),
            ("method", true)
        ]
        .map(|(s, ok)| (s.to_owned(), ok))
    );
    assert!(
        v["dashboard"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
}

#[test]
fn demo_streams_live_telemetry_until_interrupted() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut child = Command::new(env!("CARGO_BIN_EXE_iothub"))
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut live = 0;
    let mut seen = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        // Live lines: "    telemetry  2026-…Z  {"temperature":…}" after the transcript.
        if line.trim_start().starts_with("telemetry ") && line.contains("Z  {\"temperature\":") {
            live += 1;
            if live == 2 {
                let kill = Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status()
                    .unwrap();
                assert!(kill.success());
            }
        }
        seen.push(line);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", seen.join("\n"));
    assert!(live >= 2, "{}", seen.join("\n"));
    assert!(seen.iter().any(|l| l.contains("Press Ctrl-C to stop")));
    assert!(seen.iter().any(|l| l.contains("every step worked")));
}

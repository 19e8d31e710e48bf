//! `completions` and `man`: produced from the clap definitions, accepted by the shell they are
//! for, and naming the real commands and flags.

use std::process::Command;

use crate::support::binary;

fn stdout_of(args: &[&str]) -> String {
    let out = binary().args(args).output().expect("the binary runs");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn bash_completions_load_into_bash_and_complete_commands_and_flags() {
    let script = stdout_of(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drs-runbook.bash");
    std::fs::write(&path, &script).unwrap();
    // Source it in a real bash and ask bash what completes the command, then complete
    // `drs-runbook fail` and `drs-runbook failover --poi` as bash would on <Tab>.
    let probe = format!(
        r#"source {path}
complete -p drs-runbook
fn=$(complete -p drs-runbook | sed 's/.* -F \([^ ]*\) .*/\1/')
COMP_WORDS=(drs-runbook fail); COMP_CWORD=1; COMP_LINE="drs-runbook fail"; COMP_POINT=${{#COMP_LINE}}
"$fn" drs-runbook fail drs-runbook; echo "commands: ${{COMPREPLY[*]}}"
COMP_WORDS=(drs-runbook failover --poi); COMP_CWORD=2; COMP_LINE="drs-runbook failover --poi"; COMP_POINT=${{#COMP_LINE}}
"$fn" drs-runbook --poi failover; echo "flags: ${{COMPREPLY[*]}}"
COMP_WORDS=(drs-runbook failover --mode un); COMP_CWORD=3
"$fn" drs-runbook un --mode; echo "modes: ${{COMPREPLY[*]}}"
COMP_WORDS=(drs-runbook audit v); COMP_CWORD=2
"$fn" drs-runbook v audit; echo "audit: ${{COMPREPLY[*]}}""#,
        path = path.display()
    );
    let out = Command::new("bash")
        .args(["--noprofile", "--norc", "-c", &probe])
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("-F _drs") && text.contains(" drs-runbook\n"),
        "{text}"
    );
    assert!(
        text.contains("commands: failover failback")
            || text.contains("commands: failback failover"),
        "`fail` completes to the two commands: {text}"
    );
    assert!(text.contains("flags: --point-in-time"), "{text}");
    assert!(text.contains("modes: unplanned"), "{text}");
    assert!(text.contains("audit: verify"), "{text}");
}

#[test]
fn zsh_fish_and_powershell_completions_name_the_commands() {
    let zsh = stdout_of(&["completions", "zsh"]);
    assert!(
        zsh.starts_with("#compdef drs-runbook"),
        "{}",
        &zsh[..80.min(zsh.len())]
    );
    let fish = stdout_of(&["completions", "fish"]);
    assert!(fish.contains("complete -c drs-runbook"), "{fish}");
    for shell in [&zsh, &fish] {
        for command in [
            "failover", "drill", "failback", "rollback", "report", "doctor",
        ] {
            assert!(shell.contains(command), "{command} is completed");
        }
    }
    let powershell = stdout_of(&["completions", "powershell"]);
    assert!(powershell.contains("Register-ArgumentCompleter"));
}

#[test]
fn the_man_page_lists_every_command_and_a_command_page_its_flags() {
    let page = stdout_of(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH drs-runbook 1"),
        "{page}"
    );
    assert!(page.contains(".TH drs-runbook 1"), "{page}");
    for command in [
        "failover", "drill", "failback", "resume", "rollback", "history", "report",
    ] {
        assert!(page.contains(command), "drs-runbook(1) names {command}");
    }
    let failover = stdout_of(&["man", "failover"]);
    assert!(
        failover.contains(".TH drs-runbook-failover 1"),
        "{failover}"
    );
    assert!(failover.contains("point\\-in\\-time"), "{failover}");
    assert!(
        failover.contains("unplanned"),
        "the --mode values are listed"
    );
    assert!(
        failover.contains("\\-\\-db"),
        "global flags are on command pages"
    );
    // groff renders both pages without a warning (-ww: all warnings, -z: no output).
    for roff in [&page, &failover] {
        use std::io::Write;
        let mut groff = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("groff runs (Debian's groff-base)");
        groff
            .stdin
            .take()
            .unwrap()
            .write_all(roff.as_bytes())
            .unwrap();
        let out = groff.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warns");
    }

    let unknown = binary().args(["man", "fallover"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("no command \"fallover\"") && stderr.contains("failover"),
        "{stderr}"
    );
}

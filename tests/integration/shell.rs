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

const VALIDATE_WITH_JSONSCHEMA: &str = r#"
import json, sys, tomllib
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
for path in sys.argv[2:]:
    with open(path, "rb") as f:
        document = tomllib.load(f)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    for e in errors:
        print("%s: %s: %s" % (path, "/".join(str(p) for p in e.absolute_path), e.message))
    if not errors:
        print("%s: valid" % path)
"#;

#[test]
fn the_runbook_schema_accepts_the_example_runbooks_and_rejects_a_broken_one() {
    let schema = stdout_of(&["schema"]);
    let dir = tempfile::tempdir().unwrap();
    let schema_path = dir.path().join("runbook.schema.json");
    std::fs::write(&schema_path, &schema).unwrap();
    let payments = crate::support::repo_path("runbooks/payments.toml");
    let reporting = crate::support::repo_path("runbooks/reporting-drill.toml");
    // The same file with a typo'd key, a string where a list belongs, and an unknown step kind.
    let broken = std::fs::read_to_string(&payments)
        .unwrap()
        .replacen("optional = [", "optionals = [", 1)
        .replacen(
            "servers = [\"s-1234567890abcdef0\"]",
            "servers = \"s-1234567890abcdef0\"",
            1,
        )
        .replacen("before = [\"dns_cutover\"", "before = [\"dns_cut_over\"", 1);
    let broken_path = dir.path().join("broken.toml");
    std::fs::write(&broken_path, broken).unwrap();
    let out = Command::new(crate::support::venv_bin("python"))
        .args(["-c", VALIDATE_WITH_JSONSCHEMA])
        .arg(&schema_path)
        .args([&payments, &reporting, &broken_path])
        .output()
        .expect("the venv's python runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("payments.toml: valid"), "{text}");
    assert!(text.contains("reporting-drill.toml: valid"), "{text}");
    assert!(!text.contains("broken.toml: valid"), "{text}");
    assert!(
        text.contains("broken.toml: wave/1: Additional properties are not allowed ('optionals' was unexpected)"),
        "{text}"
    );
    assert!(
        text.contains("broken.toml: wave/0/servers: 's-1234567890abcdef0' is not of type 'array'"),
        "{text}"
    );
    assert!(
        text.contains("broken.toml: approvals/before/0: 'dns_cut_over' is not one of"),
        "{text}"
    );
    // And the parser agrees that the broken file is broken, key by key.
    let validate = binary().arg("validate").arg(&broken_path).output().unwrap();
    assert_eq!(validate.status.code(), Some(2));
}

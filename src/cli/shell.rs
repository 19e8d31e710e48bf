//! `schema`, `completions <SHELL>` and `man`: generated from the clap definitions of [`super::Cli`], so
//! they list exactly the commands, flags and values this binary accepts.

use clap::CommandFactory;
use std::io::Write;

use super::{Cli, CliError};

/// The shells `completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn completions(args: &CompletionsArgs) -> Result<u8, CliError> {
    use clap_complete::Shell as S;
    let shell = match args.shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
        Shell::Elvish => S::Elvish,
        Shell::Powershell => S::PowerShell,
    };
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "drs-runbook", &mut script);
    if args.shell == Shell::Bash {
        script = fix_bash_case_labels(&script);
    }
    write_out(&script)
}

/// clap_complete 4.6 escapes the hyphen of `drs-runbook` one way where it sets `cmd`
/// (`drs__runbook__subcmd__failover`) and another in the `case` labels that read it
/// (`drs__subcmd__runbook__subcmd__failover`), so no subcommand's flags or values complete.
/// The labels are renamed to what `cmd` holds (the integration test completes
/// `drs-runbook failover --poi` in a real bash).
fn fix_bash_case_labels(script: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(script)
        .replace("drs__subcmd__runbook", "drs__runbook")
        .into_bytes()
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// A command's own page (drs-runbook-failover(1), ...); without it, drs-runbook(1).
    pub command: Option<String>,
}

/// A manual page in roff: drs-runbook(1), or one command's page, drs-runbook-<command>(1), as
/// git has them.
pub fn man(args: &ManArgs) -> Result<u8, CliError> {
    let mut root = Cli::command();
    // Built, so that the global flags (--db, --sim, --output, ...) appear on command pages too.
    root.build();
    let command = match &args.command {
        None => root,
        Some(name) => {
            let names: Vec<String> = root
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .collect();
            let Some(sub) = root.find_subcommand(name).cloned() else {
                return Err(CliError::UnknownCommand {
                    name: name.clone(),
                    known: names,
                });
            };
            let page = format!("drs-runbook-{}", sub.get_name());
            sub.name(page).version(env!("CARGO_PKG_VERSION"))
        }
    };
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(CliError::WriteStdout)?;
    write_out(&page)
}

/// The runbook file's JSON Schema, pretty-printed.
pub fn schema() -> Result<u8, CliError> {
    let schema = crate::runbook::schema::runbook_schema();
    let mut text = serde_json::to_string_pretty(&schema)?;
    text.push('\n');
    write_out(text.as_bytes())
}

fn write_out(bytes: &[u8]) -> Result<u8, CliError> {
    let mut out = std::io::stdout().lock();
    // A closed pipe is handled by the signal layer (exit 141); other errors are reported.
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(CliError::WriteStdout)?;
    Ok(super::exit::SUCCEEDED)
}

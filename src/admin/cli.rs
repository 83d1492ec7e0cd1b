//! `warren definitions export|plan|apply`: the command line on the HTTP API.
//!
//! The file is read and parsed here (JSON, or YAML for `.yaml`/`.yml`), so a
//! syntax error is reported with its line and column before anything is sent;
//! the broker validates it against its own state and plans or applies it.
//! Exit codes: 0 done (or nothing to change), 2 `plan` found changes, 1 error.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::admin::definitions::{self, plan::Plan, Format};

#[derive(Subcommand, Debug, Clone)]
pub(crate) enum Command {
    /// Export, plan and apply definitions through a running broker's HTTP API.
    Definitions {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        action: DefinitionsAction,
    },
}

#[derive(Args, Debug, Clone)]
pub(crate) struct ApiArgs {
    /// The broker's HTTP API.
    #[arg(
        long,
        env = "WARREN_URL",
        default_value = "http://127.0.0.1:15672",
        global = true
    )]
    pub(crate) url: String,
    /// User (with the administrator tag).
    #[arg(long, env = "WARREN_USER", default_value = "guest", global = true)]
    pub(crate) user: String,
    #[arg(
        long,
        env = "WARREN_PASSWORD",
        default_value = "guest",
        global = true,
        hide_env_values = true
    )]
    pub(crate) password: String,
}

#[derive(Subcommand, Debug, Clone)]
pub(crate) enum DefinitionsAction {
    /// Write the broker's definitions (RabbitMQ's format) to FILE or stdout;
    /// YAML when FILE ends in .yaml/.yml.
    Export {
        /// Only this vhost's policies, parameters, queues, exchanges and bindings.
        #[arg(long)]
        vhost: Option<String>,
        file: Option<PathBuf>,
    },
    /// Show what applying FILE would create, change or delete (exit code 2 when
    /// there is something to do).
    Plan {
        file: PathBuf,
        /// Also list what the file does not mention (apply --prune would delete it).
        #[arg(long)]
        prune: bool,
    },
    /// Create and change what FILE says; with --prune also delete what it does
    /// not mention (never the vhost /, the user guest or guest's permissions in /).
    Apply {
        file: PathBuf,
        #[arg(long)]
        prune: bool,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Definitions(#[from] definitions::DefinitionsError),
    #[error("cannot reach {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{0}")]
    Refused(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// Runs a subcommand; the exit code follows the module docs.
pub(crate) async fn run(command: Command) -> ExitCode {
    let Command::Definitions { api, action } = command;
    match run_definitions(&api, action).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_definitions(api: &ApiArgs, action: DefinitionsAction) -> Result<ExitCode, CliError> {
    let client = reqwest::Client::new();
    let base = api.url.trim_end_matches('/');
    match action {
        DefinitionsAction::Export { vhost, file } => {
            let url = match &vhost {
                Some(v) => format!("{base}/api/definitions/{}", encode_segment(v)),
                None => format!("{base}/api/definitions"),
            };
            let doc = call(client.get(&url), api, &url).await?;
            let text = match &file {
                Some(path) if Format::from_path(path) == Format::Yaml => {
                    serde_norway::to_string(&doc).map_err(|e| CliError::Other(e.to_string()))?
                }
                _ => {
                    let mut t = serde_json::to_string_pretty(&doc)
                        .map_err(|e| CliError::Other(e.to_string()))?;
                    t.push('\n');
                    t
                }
            };
            match file {
                Some(path) => std::fs::write(&path, text).map_err(|source| CliError::Write {
                    path: path.display().to_string(),
                    source,
                })?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        DefinitionsAction::Plan { file, prune } => {
            let body = read(&file)?;
            let url = format!("{base}/api/warren/plan?prune={prune}");
            let answer = call(client.post(&url).json(&body), api, &url).await?;
            print_warnings(&answer);
            let plan = plan_of(&answer)?;
            print!("{plan}");
            Ok(if plan.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        DefinitionsAction::Apply { file, prune } => {
            let body = read(&file)?;
            let url = format!("{base}/api/warren/apply?prune={prune}");
            let answer = call(client.post(&url).json(&body), api, &url).await?;
            if let Some(report) = answer.get("report") {
                print_warnings(report);
                if let Some(conflicts) = report.get("conflicts").and_then(Value::as_array) {
                    for c in conflicts.iter().filter_map(Value::as_str) {
                        eprintln!("warning: {c}");
                    }
                }
            }
            let plan = plan_of(&answer)?;
            print!("{plan}");
            if !plan.is_empty() {
                println!("Applied.");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read(path: &Path) -> Result<definitions::Definitions, CliError> {
    Ok(definitions::load_file(path)?)
}

fn plan_of(answer: &Value) -> Result<Plan, CliError> {
    serde_json::from_value(answer.get("plan").cloned().unwrap_or(Value::Null))
        .map_err(|e| CliError::Other(format!("unexpected answer from the broker: {e}")))
}

fn print_warnings(answer: &Value) {
    if let Some(list) = answer.get("warnings").and_then(Value::as_array) {
        for w in list.iter().filter_map(Value::as_str) {
            eprintln!("warning: {w}");
        }
    }
}

/// Sends a request with basic auth; a refusal becomes the broker's reason.
async fn call(req: reqwest::RequestBuilder, api: &ApiArgs, url: &str) -> Result<Value, CliError> {
    let resp = req
        .basic_auth(&api.user, Some(&api.password))
        .send()
        .await
        .map_err(|source| CliError::Http {
            url: url.to_string(),
            source,
        })?;
    let status = resp.status();
    let text = resp.text().await.map_err(|source| CliError::Http {
        url: url.to_string(),
        source,
    })?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        return Ok(body);
    }
    let problems: Vec<String> = body
        .get("problems")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let reason = body
        .get("reason")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string());
    if status.as_u16() == 400 && !problems.is_empty() {
        return Err(CliError::Refused(format!(
            "the broker refused the file:\n  {}",
            problems.join("\n  ")
        )));
    }
    Err(CliError::Refused(format!(
        "{} from {url}: {reason}",
        status
    )))
}

/// What a URL path segment keeps as it is: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a vhost name for a URL path segment (`/` is `%2F`).
fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn vhost_names_are_encoded() {
        assert_eq!(super::encode_segment("/"), "%2F");
        assert_eq!(super::encode_segment("shop eu"), "shop%20eu");
        assert_eq!(super::encode_segment("a-b.c"), "a-b.c");
    }
}

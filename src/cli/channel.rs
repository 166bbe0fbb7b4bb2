//! `hsm-otp channel …`: create, list, rotate keys of and disable channels.

use clap::Subcommand;
use serde_json::json;

use super::CliError;
use crate::config::Config;
use crate::service::ChannelOptions;
use crate::store::ChannelRow;

/// Channel administration.
#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Create a channel and print its key (shown once, never stored).
    Create {
        /// Unique name: letters, digits, `.`, `_`, `-`.
        name: String,
        /// Accept this channel's key only with this client certificate (SHA-256 of the DER,
        /// hex; colons allowed). Repeatable; none: any certificate of the client CA.
        #[arg(long = "client-cert-sha256", value_name = "HEX")]
        client_cert_sha256: Vec<String>,
        /// Accept this channel's key only from this network (CIDR or address). Repeatable;
        /// none: any address.
        #[arg(long = "allow-ip", value_name = "CIDR")]
        allow_ip: Vec<String>,
        /// Allow this channel to receive codes in answers (`delivery: "response"`, the
        /// code-generating compatible surfaces), for callers that deliver codes themselves.
        #[arg(long)]
        may_receive_otp: bool,
        /// Limit the messages (SMS, e-mail, voice) this channel may send.
        #[arg(long, value_name = "N")]
        message_budget: Option<u64>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List channels.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Replace a channel's key; the old key stops working at once.
    RotateKey {
        /// The channel.
        name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Disable a channel; its key is refused from now on.
    Disable {
        /// The channel.
        name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a channel command.
pub(super) fn run(command: ChannelCommand, config: &Config) -> Result<(), CliError> {
    let services = crate::startup::services(config)?;
    match command {
        ChannelCommand::Create {
            name,
            client_cert_sha256,
            allow_ip,
            may_receive_otp,
            message_budget,
            json,
        } => {
            let options = ChannelOptions {
                client_cert_sha256,
                allow_ip,
                may_receive_otp,
                message_budget: message_budget.map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
            };
            let (row, key) = services.create_channel(&name, &options)?;
            if json {
                let mut out = describe(&row);
                if let Some(object) = out.as_object_mut() {
                    object.insert("channel_key".into(), json!(key.channel_key.expose()));
                }
                println!("{out}");
            } else {
                println!("created channel {}", row.name);
                if let Some(account) = &row.account_number {
                    println!("account number (UnityVox accountnumber): {account}");
                }
                println!(
                    "channel key (shown once, store it now): {}",
                    key.channel_key.expose()
                );
            }
        }
        ChannelCommand::List { json } => {
            let rows = services.list_channels()?;
            if json {
                let list: Vec<_> = rows.iter().map(describe).collect();
                println!("{}", json!(list));
            } else {
                println!("{:<24} {:<9} {:<6} {:<6}", "NAME", "STATE", "CERTS", "NETS");
                for r in rows {
                    let state = if r.disabled { "disabled" } else { "active" };
                    println!(
                        "{:<24} {:<9} {:<6} {:<6}",
                        r.name,
                        state,
                        r.client_cert_sha256.len(),
                        r.allowed_networks.len()
                    );
                }
            }
        }
        ChannelCommand::RotateKey { name, json } => {
            let key = services.rotate_channel_key(&name)?;
            if json {
                println!(
                    "{}",
                    json!({"name": key.name, "channel_key": key.channel_key.expose()})
                );
            } else {
                println!(
                    "new key for {} (shown once): {}",
                    key.name,
                    key.channel_key.expose()
                );
            }
        }
        ChannelCommand::Disable { name, json } => {
            let row = services.disable_channel(&name)?;
            if json {
                println!("{}", describe(&row));
            } else {
                println!("disabled channel {}", row.name);
            }
        }
    }
    Ok(())
}

fn describe(row: &ChannelRow) -> serde_json::Value {
    json!({
        "id": row.id,
        "name": row.name,
        "disabled": row.disabled,
        "client_cert_sha256": row.client_cert_sha256,
        "allowed_networks": row.allowed_networks,
        "may_receive_otp": row.may_receive_otp,
        "account_number": row.account_number,
        "message_budget": row.message_budget,
        "created_at": row.created_at,
    })
}

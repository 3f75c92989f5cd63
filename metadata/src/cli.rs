//! `magnetar metadata …`: run a node, and an etcdctl-like operator CLI. Output is for people by
//! default and JSON with `--json`.

use clap::{Args, Subcommand};
use magnetar_protocol::ClusterToken;
use serde_json::json;
use std::path::PathBuf;

use crate::client::{ClientOptions, MetadataClient, Record};
use crate::config::NodeConfig;
use crate::types::{EventKind, Expected};

#[derive(Debug, Args)]
pub struct MetadataArgs {
    /// Metadata nodes to talk to (any of them; the leader is found).
    #[arg(
        long,
        global = true,
        env = "MAGNETAR_METADATA_SERVERS",
        value_delimiter = ',',
        default_value = "127.0.0.1:6690"
    )]
    pub servers: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The cluster token the nodes require: `file:///path` or the token itself.
    #[arg(
        long,
        global = true,
        env = "MAGNETAR_CLUSTER_TOKEN",
        hide_env_values = true
    )]
    pub cluster_token: Option<String>,
    #[command(subcommand)]
    pub command: MetadataCommand,
}

#[derive(Debug, Subcommand)]
pub enum MetadataCommand {
    /// Run a metadata node.
    Serve(ServeArgs),
    /// Print a key's value and version.
    Get { key: String },
    /// Write a key.
    Put {
        key: String,
        value: String,
        /// Only if the key is at this version.
        #[arg(long, conflicts_with = "create")]
        expect_version: Option<u64>,
        /// Only if the key does not exist yet.
        #[arg(long)]
        create: bool,
    },
    /// Delete a key.
    Delete {
        key: String,
        #[arg(long)]
        expect_version: Option<u64>,
    },
    /// List keys under a prefix, in order.
    List {
        #[arg(default_value = "")]
        prefix: String,
        #[arg(long)]
        keys_only: bool,
    },
    /// Names one level below a path.
    Children { path: String },
    /// Print changes under a prefix as they happen.
    Watch {
        #[arg(default_value = "")]
        prefix: String,
        /// Start from this revision (default: changes from now on).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Stop after this many revisions.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Status of every listed node: leader, term, applied index, revision.
    Status,
    /// Show, add or remove members of the group.
    Members {
        #[command(subcommand)]
        action: Option<MembersAction>,
    },
    /// Measure puts/s, put latency and gets/s (on a fresh local 3-node group unless --servers is given).
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum MembersAction {
    List,
    /// Add a node (started with the current peers) as a voting member.
    Add {
        node_id: u64,
        addr: String,
    },
    Remove {
        node_id: u64,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file with node settings (flags override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub node_id: Option<u64>,
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Address peers and clients use to reach this node (default: --listen).
    #[arg(long)]
    pub advertise: Option<String>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Voting members at first start, this node included: `1=HOST:PORT,2=HOST:PORT,3=HOST:PORT`.
    #[arg(long)]
    pub peers: Option<String>,
    /// The secret every client and peer must present first (and this node presents to its
    /// peers): `file:///path` or the token itself. Without one, anyone is served.
    #[arg(long, env = "MAGNETAR_CLUSTER_TOKEN", hide_env_values = true)]
    pub cluster_token: Option<String>,
    /// HTTP listener for `/health/live`, `/health/ready` and `/metrics` (e.g. 0.0.0.0:7690);
    /// none when left out.
    #[arg(long, env = "MAGNETAR_METADATA_HTTP_ADDR")]
    pub http_addr: Option<std::net::SocketAddr>,
}

impl ServeArgs {
    pub fn into_config(self) -> anyhow::Result<NodeConfig> {
        let mut config = match &self.config {
            Some(path) => NodeConfig::from_toml_file(path)?,
            None => NodeConfig::default(),
        };
        if let Some(id) = self.node_id {
            config.node_id = id;
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if self.advertise.is_some() {
            config.advertise = self.advertise;
        }
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        if let Some(peers) = &self.peers {
            config.peers = NodeConfig::parse_peers(peers)?;
        }
        if let Some(setting) = &self.cluster_token {
            config.cluster_token = Some(ClusterToken::from_setting(setting)?);
        }
        config.validate()?;
        Ok(config)
    }
}

fn value_json(value: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(value) {
        Ok(text) => json!(text),
        Err(_) => json!({ "hex": value.iter().map(|b| format!("{b:02x}")).collect::<String>() }),
    }
}

fn record_json(record: &Record) -> serde_json::Value {
    json!({
        "key": record.key,
        "value": value_json(&record.value),
        "version": record.version,
        "create_revision": record.create_revision,
        "mod_revision": record.mod_revision,
        "session": record.session,
    })
}

fn expected(version: Option<u64>, create: bool) -> Expected {
    match (version, create) {
        (Some(v), _) => Expected::Version(v),
        (None, true) => Expected::Absent,
        (None, false) => Expected::Any,
    }
}

/// Runs a client subcommand (everything but `serve`).
pub async fn run(args: MetadataArgs) -> anyhow::Result<()> {
    let options = ClientOptions {
        cluster_token: args
            .cluster_token
            .as_deref()
            .map(ClusterToken::from_setting)
            .transpose()?,
        ..ClientOptions::default()
    };
    let client = MetadataClient::new(args.servers.clone(), options.clone())?;
    let json_out = args.json;
    match args.command {
        MetadataCommand::Serve(_) => anyhow::bail!("serve is run by the binary"),
        MetadataCommand::Get { key } => match client.get(&key).await? {
            Some(record) if json_out => println!("{}", record_json(&record)),
            Some(record) => {
                println!("{}", String::from_utf8_lossy(&record.value));
                eprintln!(
                    "version {} (modified at revision {})",
                    record.version, record.mod_revision
                );
            }
            None => anyhow::bail!("key {key} not found"),
        },
        MetadataCommand::Put {
            key,
            value,
            expect_version,
            create,
        } => {
            let version = client
                .put(&key, value.into_bytes(), expected(expect_version, create))
                .await?;
            if json_out {
                println!("{}", json!({ "key": key, "version": version }));
            } else {
                println!("OK {key} version {version}");
            }
        }
        MetadataCommand::Delete {
            key,
            expect_version,
        } => {
            let deleted = client.delete(&key, expected(expect_version, false)).await?;
            if json_out {
                println!("{}", json!({ "key": key, "deleted": deleted }));
            } else {
                println!("{}", if deleted { "deleted" } else { "not found" });
            }
        }
        MetadataCommand::List { prefix, keys_only } => {
            let records = client.list(&prefix).await?;
            if json_out {
                println!(
                    "{}",
                    serde_json::Value::Array(records.iter().map(record_json).collect())
                );
            } else {
                for record in &records {
                    if keys_only {
                        println!("{}", record.key);
                    } else {
                        println!(
                            "{}  (v{})  {}",
                            record.key,
                            record.version,
                            String::from_utf8_lossy(&record.value)
                        );
                    }
                }
            }
        }
        MetadataCommand::Children { path } => {
            let names = client.children(&path).await?;
            if json_out {
                println!("{}", json!(names));
            } else {
                names.iter().for_each(|name| println!("{name}"));
            }
        }
        MetadataCommand::Watch {
            prefix,
            from,
            count,
        } => {
            let mut watch = client.watch(&prefix, from).await?;
            if !json_out {
                eprintln!(
                    "watching {:?} after revision {}",
                    prefix,
                    watch.start_revision()
                );
            }
            let mut seen = 0;
            while count.is_none_or(|c| seen < c) {
                let Some(event) = watch.next().await else {
                    break;
                };
                let event = event?;
                for change in &event.changes {
                    let kind = if change.kind == EventKind::Put {
                        "PUT"
                    } else {
                        "DELETE"
                    };
                    if json_out {
                        println!(
                            "{}",
                            json!({ "revision": event.revision, "type": kind, "kv": record_json(&change.record) })
                        );
                    } else {
                        println!(
                            "{} {kind} {} {}",
                            event.revision,
                            change.record.key,
                            String::from_utf8_lossy(&change.record.value)
                        );
                    }
                }
                seen += 1;
            }
        }
        MetadataCommand::Status => {
            let mut rows = Vec::new();
            for server in &args.servers {
                let status = client.status_of(server).await;
                rows.push((server.clone(), status));
            }
            if json_out {
                let out: Vec<_> = rows
                    .iter()
                    .map(|(server, status)| match status {
                        Ok(s) => json!({ "server": server, "node_id": s.node_id, "state": s.state, "leader_id": s.leader_id,
                            "term": s.term, "last_log_index": s.last_log_index, "applied_index": s.applied_index, "revision": s.revision }),
                        Err(e) => json!({ "server": server, "error": e.to_string() }),
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(out));
            } else {
                println!(
                    "{:<22} {:>4} {:<10} {:>6} {:>5} {:>10} {:>10} {:>9}",
                    "SERVER", "ID", "STATE", "LEADER", "TERM", "LAST LOG", "APPLIED", "REVISION"
                );
                for (server, status) in rows {
                    match status {
                        Ok(s) => println!(
                            "{:<22} {:>4} {:<10} {:>6} {:>5} {:>10} {:>10} {:>9}",
                            server,
                            s.node_id,
                            s.state,
                            s.leader_id,
                            s.term,
                            s.last_log_index,
                            s.applied_index,
                            s.revision
                        ),
                        Err(e) => println!("{server:<22} unreachable: {e}"),
                    }
                }
            }
        }
        MetadataCommand::Members { action } => {
            let status = match action.unwrap_or(MembersAction::List) {
                MembersAction::List => client.status().await?,
                MembersAction::Add { node_id, addr } => client.add_member(node_id, &addr).await?,
                MembersAction::Remove { node_id } => client.remove_member(node_id).await?,
            };
            if json_out {
                let members: Vec<_> = status
                    .members
                    .iter()
                    .map(|m| json!({ "node_id": m.node_id, "addr": m.addr, "voter": m.voter, "leader": m.node_id == status.leader_id }))
                    .collect();
                println!("{}", serde_json::Value::Array(members));
            } else {
                println!("{:>4} {:<22} ROLE", "ID", "ADDRESS");
                for m in &status.members {
                    let role = if m.voter { "voter" } else { "learner" };
                    let leader = if m.node_id == status.leader_id {
                        "leader"
                    } else {
                        ""
                    };
                    println!("{:>4} {:<22} {:<8} {}", m.node_id, m.addr, role, leader);
                }
            }
        }
        MetadataCommand::Bench(bench) => {
            let servers = bench.use_servers.then_some(args.servers);
            crate::bench::run(bench, servers, options, json_out).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        metadata: MetadataArgs,
    }

    const TOKEN: &str = "literal-token-0123456789";

    #[test]
    fn every_subcommand_takes_the_cluster_token() {
        Cli::command().debug_assert();
        for args in [
            &["m", "get", "/a", "--cluster-token", TOKEN][..],
            &["m", "--cluster-token", TOKEN, "status"],
            &["m", "members", "add", "4", "h:1", "--cluster-token", TOKEN],
            &["m", "watch", "/w/", "--cluster-token", TOKEN],
            &["m", "bench", "--use-servers", "--cluster-token", TOKEN],
        ] {
            let cli = Cli::try_parse_from(args).expect("parses");
            assert_eq!(
                cli.metadata.cluster_token.as_deref(),
                Some(TOKEN),
                "{args:?}"
            );
        }
    }

    #[test]
    fn serve_reads_the_cluster_token_setting() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{TOKEN}\n")).expect("write");
        let setting = format!("file://{}", path.display());
        let cli = Cli::try_parse_from(["m", "serve", "--cluster-token", &setting]).expect("parses");
        let MetadataCommand::Serve(serve) = cli.metadata.command else {
            panic!("serve expected");
        };
        let config = serve.into_config().expect("config");
        let token = config.cluster_token.expect("a token");
        assert!(token.matches(TOKEN.as_bytes()));

        let cli = Cli::try_parse_from(["m", "serve", "--cluster-token", "short"]).expect("parses");
        let MetadataCommand::Serve(serve) = cli.metadata.command else {
            panic!("serve expected");
        };
        assert!(serve.into_config().is_err(), "a short token is refused");
    }
}

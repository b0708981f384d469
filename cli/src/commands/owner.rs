//! `basalt owner create|rotate|rm|ls`: volume owners and their keys.
//!
//! A key is made here (32 random bytes), printed once or written to `--key-file` (mode
//! 0600); only its verifier (salt + stored key) is sent to the MDS. Creating and
//! removing owners needs the admin credential in the client config; rotating a key the
//! admin's or the owner's current key.

use super::Ctx;
use crate::admin::{block_on, client_file, Admin};
use crate::error::CliError;
use crate::output::{json, table, Format};
use basalt_client::config_file::write_key;
use basalt_proto::credential::{AuthOp, OwnerKey, Verifier, SALT_LEN};
use basalt_proto::mds::{CreateOwner, DeleteOwner, ListOwners, OwnerInfo, SetOwnerKey};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// `owner` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The verb.
    #[command(subcommand)]
    pub verb: Verb,
    /// Act as this owner (overrides `owner` in the client config; `admin` for the admin
    /// credential).
    #[arg(long = "as", global = true, value_name = "OWNER")]
    pub principal: Option<String>,
    /// Key of the owner acted as (overrides `key-file` in the client config).
    #[arg(long = "key-file", global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// Verbs.
#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// Register an owner and make its key (shown once; admin only).
    Create {
        /// Owner name (1..=128 of [A-Za-z0-9._-]; `admin` is reserved).
        name: String,
        /// Write the key to this new file (mode 0600) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Replace an owner's key (admin, or the owner with its current key). The old key
    /// stops working at once; open volumes stay open.
    Rotate {
        /// Owner name.
        name: String,
        /// Write the new key to this new file (mode 0600) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Remove an owner (admin only; refused while it owns volumes).
    Rm {
        /// Owner name.
        name: String,
    },
    /// List owners (never their keys).
    Ls,
}

/// An owner as the CLI prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerDoc {
    /// Name.
    pub name: String,
    /// Registration time, seconds since the epoch.
    pub ctime: u64,
    /// When the key was last set, seconds since the epoch.
    pub key_time: u64,
}

impl From<&OwnerInfo> for OwnerDoc {
    fn from(o: &OwnerInfo) -> Self {
        OwnerDoc {
            name: o.name.clone(),
            ctime: o.ctime,
            key_time: o.key_time,
        }
    }
}

/// A new key: the owner, and the key text unless it went to a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyDoc {
    /// Owner.
    pub owner: String,
    /// The key (hex) when printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The file it was written to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

/// A fresh random key and its verifier.
pub fn new_key() -> (OwnerKey, Verifier) {
    let key = OwnerKey::from_bytes(rand::random());
    let salt: [u8; SALT_LEN] = rand::random();
    let v = key.verifier(salt);
    (key, v)
}

fn refuse_existing(out: Option<&Path>) -> Result<(), CliError> {
    match out {
        Some(p) if p.exists() => Err(CliError::Usage {
            arg: "--out",
            reason: format!("{} exists; not overwriting a key file", p.display()),
        }),
        _ => Ok(()),
    }
}

fn deliver(
    ctx: &mut Ctx<'_>,
    owner: &str,
    key: &OwnerKey,
    out: Option<PathBuf>,
) -> Result<(), CliError> {
    let doc = match out {
        Some(p) => {
            write_key(&p, key)?;
            KeyDoc {
                owner: owner.into(),
                key: None,
                key_file: Some(p),
            }
        }
        None => KeyDoc {
            owner: owner.into(),
            key: Some(key.to_hex()),
            key_file: None,
        },
    };
    print_key(ctx, &doc)
}

/// Print a new key.
pub fn print_key(ctx: &mut Ctx<'_>, d: &KeyDoc) -> Result<(), CliError> {
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, d)?);
    }
    match (&d.key, &d.key_file) {
        (Some(k), _) => {
            writeln!(ctx.out, "{k}")?;
            (ctx.progress)(&format!(
                "owner {}: key shown once; store it (mode 0600) and name it as key-file in the owner's client config",
                d.owner
            ));
        }
        (None, Some(p)) => {
            (ctx.progress)(&format!(
                "owner {}: key written to {}",
                d.owner,
                p.display()
            ));
        }
        (None, None) => {}
    }
    Ok(())
}

/// Print owners.
pub fn print_owners(ctx: &mut Ctx<'_>, owners: &[OwnerInfo]) -> Result<(), CliError> {
    let docs: Vec<OwnerDoc> = owners.iter().map(OwnerDoc::from).collect();
    if ctx.format == Format::Json {
        return Ok(json(ctx.out, &docs)?);
    }
    let rows: Vec<Vec<String>> = docs
        .iter()
        .map(|d| vec![d.name.clone(), d.ctime.to_string(), d.key_time.to_string()])
        .collect();
    Ok(table(ctx.out, &["OWNER", "CREATED", "KEY-SET"], &rows)?)
}

/// Run an `owner` verb.
pub fn run(args: Args, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let mut file = client_file(ctx)?;
    if let Some(p) = args.principal {
        file.owner = p;
    }
    if let Some(k) = args.key_file {
        file.key_file = Some(k);
    }
    match args.verb {
        Verb::Create { name, out } => {
            refuse_existing(out.as_deref())?;
            let (key, verifier) = new_key();
            block_on(async {
                let op = AuthOp::CreateOwner {
                    name: &name,
                    verifier: &verifier,
                };
                Admin::new(&file)?
                    .call_authed(&op, |auth| CreateOwner {
                        name: name.clone(),
                        verifier: verifier.clone(),
                        auth,
                    })
                    .await
            })?;
            deliver(ctx, &name, &key, out)
        }
        Verb::Rotate { name, out } => {
            refuse_existing(out.as_deref())?;
            let (key, verifier) = new_key();
            block_on(async {
                let op = AuthOp::SetOwnerKey {
                    name: &name,
                    verifier: &verifier,
                };
                Admin::new(&file)?
                    .call_authed(&op, |auth| SetOwnerKey {
                        name: name.clone(),
                        verifier: verifier.clone(),
                        auth,
                    })
                    .await
            })?;
            deliver(ctx, &name, &key, out)
        }
        Verb::Rm { name } => {
            block_on(async {
                Admin::new(&file)?
                    .call_authed(&AuthOp::DeleteOwner { name: &name }, |auth| DeleteOwner {
                        name: name.clone(),
                        auth,
                    })
                    .await
            })?;
            (ctx.progress)(&format!("owner {name} removed"));
            Ok(())
        }
        Verb::Ls => {
            let owners = block_on(async { Admin::new(&file)?.call(&ListOwners {}).await })?;
            print_owners(ctx, &owners)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_ctx;

    #[test]
    fn owners_render_as_the_snapshots() {
        let owners = vec![
            OwnerInfo {
                name: "alice".into(),
                ctime: 1_700_000_000,
                key_time: 1_700_000_500,
            },
            OwnerInfo {
                name: "bob".into(),
                ctime: 1_700_000_100,
                key_time: 1_700_000_100,
            },
        ];
        let text = test_ctx(Format::Plain, |c| print_owners(c, &owners));
        crate::snapshot::assert_snapshot("owner-ls.txt", &text);
        let text = test_ctx(Format::Json, |c| print_owners(c, &owners));
        crate::snapshot::assert_snapshot("owner-ls.json", &text);
    }

    #[test]
    fn new_keys_are_random_and_match_their_verifier() {
        let (k1, v1) = new_key();
        let (k2, _) = new_key();
        assert_ne!(k1, k2);
        let op = AuthOp::OpenVolume { name: "v" };
        let proof = k1.prove(&v1.salt, "o", b"n", &op);
        assert!(v1.check("o", b"n", &op, &proof));
    }

    #[test]
    fn a_key_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "x").unwrap();
        assert!(matches!(
            refuse_existing(Some(&p)),
            Err(CliError::Usage { arg: "--out", .. })
        ));
        refuse_existing(Some(&dir.path().join("new"))).unwrap();
    }
}

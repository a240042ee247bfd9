//! `oshal tokens`: tenant-scoped API tokens (create, list, revoke) with the
//! operator's token, and `whoami` for any token, all through the API.

use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use oshal_core::api::client::Client;
use oshal_core::api::tokens::NewToken;
use oshal_core::store::TokenRole;

use crate::args::{ActionArgs, json, print};

pub type Args = ActionArgs<Action>;

/// A token's role, as typed.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Role {
    /// Reads, submits, cancels, approves and runs bulk operations.
    Operator,
    /// Reads only.
    Viewer,
}

impl From<Role> for TokenRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Operator => TokenRole::Operator,
            Role::Viewer => TokenRole::Viewer,
        }
    }
}

#[derive(Subcommand)]
pub enum Action {
    /// Create a token bound to one tenant and a role; its value is printed
    /// this once (the server keeps only its hash).
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_enum)]
        role: Role,
        /// What it is for.
        #[arg(long)]
        label: Option<String>,
    },
    /// Every tenant token, revoked ones too, without their values.
    List,
    /// Revoke a token by its id (`tok_…`).
    Revoke { id: String },
    /// What the token this command sends is: the operator's, or a tenant's.
    Whoami,
}

impl Action {
    async fn call(self, client: &Client) -> Result<serde_json::Value> {
        match self {
            Self::Create {
                tenant,
                role,
                label,
            } => {
                let new = NewToken {
                    tenant,
                    role: role.into(),
                    label,
                };
                json(client.create_token(&new).await)
            }
            Self::List => json(client.tokens().await),
            Self::Revoke { id } => json(client.revoke_token(id).await),
            Self::Whoami => json(client.whoami().await),
        }
    }
}

pub async fn run(args: Args) -> Result<()> {
    print(&args.action.call(&args.api.client()?).await?)
}

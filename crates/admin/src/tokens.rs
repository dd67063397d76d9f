//! API tokens: random secrets shown once, kept as SHA-256 only, each with a role. Looked up by
//! hash on every admin call (a snapshot swapped on change, like the directory).
use vaka_core::access::{Role, TokenRecord};
use vaka_store::directory::{delete_token, put_audit, put_token, AdminAuditEntry};
use vaka_store::{Store, WriteSet};

use crate::control::{Control, ControlError};
use crate::token_table::hash;

/// The id of the token made from the configuration's `admin.bootstrap_token`.
pub const BOOTSTRAP_ID: &str = "bootstrap";

/// What a new token is for.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub role: Role,
    pub tenant: Option<String>,
    pub centre: Option<String>,
    pub label: String,
}

impl Control {
    /// The token whose secret this is.
    pub fn authenticate(&self, secret: &str) -> Option<TokenRecord> {
        self.tokens.by_hash.load().get(&hash(secret)).cloned()
    }

    /// Every token (without secrets), by id.
    pub fn token_list(&self) -> Vec<TokenRecord> {
        let mut all: Vec<TokenRecord> = self.tokens.by_hash.load().values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Makes a token; the secret is returned here once and never stored.
    pub async fn create_token(
        &self,
        actor: &str,
        new: NewToken,
    ) -> Result<(TokenRecord, String), ControlError> {
        let secret = format!("vaka_{}", hex::encode(rand::random::<[u8; 24]>()));
        let record = TokenRecord {
            id: format!("tok_{}", hex::encode(rand::random::<[u8; 6]>())),
            hash: hash(&secret),
            role: new.role,
            tenant: new.tenant,
            centre: new.centre,
            label: new.label,
            created_ms: self.now_ms(),
            created_by: actor.to_owned(),
        };
        let change = crate::replicated::TokenChange::Put(record.clone());
        match self.replicate_tokens(actor, vec![change]).await {
            Some(out) => one_result(out)?,
            None => self.save_token(actor, record.clone()).await?,
        }
        Ok((record, secret))
    }

    /// The configured bootstrap token (a platform operator), written (synced) when it is new or
    /// changed. Called once at start, before the API serves.
    pub fn ensure_bootstrap_token(&self, secret: &str) -> Result<(), ControlError> {
        let h = hash(secret);
        let old = self.token_list().into_iter().find(|t| t.id == BOOTSTRAP_ID);
        if old.as_ref().is_some_and(|t| t.hash == h) {
            return Ok(());
        }
        let record = TokenRecord {
            id: BOOTSTRAP_ID.into(),
            hash: h,
            role: Role::PlatformOperator,
            tenant: None,
            centre: None,
            label: "admin.bootstrap_token from the configuration".into(),
            created_ms: self.now_ms(),
            created_by: BOOTSTRAP_ID.into(),
        };
        let mut set = WriteSet::new();
        put_token(&mut set, &record);
        let entry = token_audit(BOOTSTRAP_ID, &record, "create token", self.now_ms());
        put_audit(&mut set, std::slice::from_ref(&entry));
        self.store().write_control(set)?;
        self.tokens.replace(|m| {
            if let Some(old) = &old {
                m.remove(&old.hash);
            }
            m.insert(record.hash.clone(), record);
        });
        Ok(())
    }

    async fn save_token(&self, actor: &str, record: TokenRecord) -> Result<(), ControlError> {
        let mut set = WriteSet::new();
        put_token(&mut set, &record);
        let entry = token_audit(actor, &record, "create token", self.now_ms());
        let rec = record.clone();
        write_with_audit(self.store(), set, entry).await?;
        self.tokens.replace(|m| {
            m.insert(rec.hash.clone(), rec);
        });
        Ok(())
    }

    /// Revokes a token: from the next call on it authenticates nothing.
    pub async fn delete_token(&self, actor: &str, id: &str) -> Result<TokenRecord, ControlError> {
        let Some(record) = self.token_list().into_iter().find(|t| t.id == id) else {
            return Err(ControlError::Directory(
                vaka_core::directory::DirectoryError::NotFound(format!("token \"{id}\"")),
            ));
        };
        let change = crate::replicated::TokenChange::Delete { id: id.to_owned() };
        if let Some(out) = self.replicate_tokens(actor, vec![change]).await {
            one_result(out)?;
            return Ok(record);
        }
        let mut set = WriteSet::new();
        delete_token(&mut set, id);
        let entry = token_audit(actor, &record, "delete token", self.now_ms());
        write_with_audit(self.store(), set, entry).await?;
        self.tokens.replace(|m| {
            m.remove(&record.hash);
        });
        Ok(record)
    }
}

/// The one result of a token change made through the cluster's directory log.
fn one_result(out: Result<crate::Outcome, ControlError>) -> Result<(), ControlError> {
    out?.results
        .pop()
        .expect("one result per token change")
        .map(|_| ())
}

/// Writes a token change with its audit entry, synced, off the runtime's threads.
async fn write_with_audit(
    store: &Store,
    mut set: WriteSet,
    entry: AdminAuditEntry,
) -> Result<(), ControlError> {
    put_audit(&mut set, std::slice::from_ref(&entry));
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.write_control(set))
        .await
        .map_err(|e| ControlError::Store(format!("token write task: {e}")))??;
    Ok(())
}

pub(crate) fn token_audit(actor: &str, t: &TokenRecord, action: &str, now: i64) -> AdminAuditEntry {
    let shown = serde_json::json!({
        "id": t.id, "role": t.role, "tenant": t.tenant, "centre": t.centre, "label": t.label,
    });
    let (before, after) = if action.starts_with("delete") {
        (Some(shown), None)
    } else {
        (None, Some(shown))
    };
    AdminAuditEntry {
        revision: 0,
        at_ms: now,
        actor: actor.to_owned(),
        tenant: t.tenant.clone(),
        action: action.to_owned(),
        resource: format!("tokens/{}", t.id),
        before,
        after,
    }
}

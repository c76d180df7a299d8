//! Conversations and their messages, each tenant seeing only its own.

use rand::distributions::{Alphanumeric, DistString};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{Store, StoreError};

/// A conversation's header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversation {
    /// `conv_…`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds of the last change.
    pub updated: u64,
    /// Its title, if it has one yet.
    pub title: Option<String>,
    /// The model it was created for, if any.
    pub model: Option<String>,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Its text.
    pub content: String,
    /// Unix seconds.
    pub created: u64,
}

/// Titles taken from the first user message keep this many characters.
pub const TITLE_CHARS: usize = 60;

fn secs(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn stamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// Creates a conversation for `tenant`; returns it once committed.
    pub fn create_conversation(
        &self,
        tenant: &str,
        title: Option<&str>,
        model: Option<&str>,
        now: u64,
    ) -> Result<Conversation, StoreError> {
        let id = format!("conv_{}", Alphanumeric.sample_string(&mut rand::thread_rng(), 24));
        let c = self.conn();
        c.execute(
            "INSERT INTO conversations (id, tenant, title, model, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![id, tenant, title, model, stamp(now)],
        )
        .map_err(|e| self.err(e))?;
        Ok(Conversation {
            id,
            created: now,
            updated: now,
            title: title.map(str::to_string),
            model: model.map(str::to_string),
        })
    }

    /// The tenant's conversations, most recently updated first.
    pub fn list_conversations(&self, tenant: &str) -> Result<Vec<Conversation>, StoreError> {
        let c = self.conn();
        let mut st = c
            .prepare(
                "SELECT id, created, updated, title, model FROM conversations WHERE tenant = ?1
                 ORDER BY updated DESC, rowid DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = st.query_map([tenant], row_to_conversation).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// One of the tenant's conversations with its messages in order; [`StoreError::NotFound`]
    /// for an unknown id and for another tenant's alike.
    pub fn get_conversation(&self, tenant: &str, id: &str) -> Result<(Conversation, Vec<StoredMessage>), StoreError> {
        let c = self.conn();
        let conv = c
            .query_row(
                "SELECT id, created, updated, title, model FROM conversations WHERE id = ?1 AND tenant = ?2",
                [id, tenant],
                row_to_conversation,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NotFound)?;
        let mut st = c
            .prepare("SELECT role, content, created FROM messages WHERE conversation = ?1 ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([id], |r| Ok(StoredMessage { role: r.get(0)?, content: r.get(1)?, created: secs(r.get(2)?) }))
            .map_err(|e| self.err(e))?;
        let messages = rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))?;
        Ok((conv, messages))
    }

    /// Deletes one of the tenant's conversations and its messages.
    pub fn delete_conversation(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let c = self.conn();
        let n = c
            .execute("DELETE FROM conversations WHERE id = ?1 AND tenant = ?2", [id, tenant])
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Appends `messages` (role, content) to one of the tenant's conversations in one
    /// transaction; an untitled conversation takes the first user message's first
    /// [`TITLE_CHARS`] characters. Returns once committed.
    pub fn append_messages(
        &self,
        tenant: &str,
        id: &str,
        messages: &[(String, String)],
        now: u64,
    ) -> Result<(), StoreError> {
        let mut c = self.conn();
        let tx = c.transaction().map_err(|e| self.err(e))?;
        let title: Option<Option<String>> = tx
            .query_row("SELECT title FROM conversations WHERE id = ?1 AND tenant = ?2", [id, tenant], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(title) = title else { return Err(StoreError::NotFound) };
        let next: i64 = tx
            .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation = ?1", [id], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        for (i, (role, content)) in messages.iter().enumerate() {
            tx.execute(
                "INSERT INTO messages (conversation, seq, role, content, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, next + i as i64, role, content, stamp(now)],
            )
            .map_err(|e| self.err(e))?;
        }
        let new_title = match title {
            Some(t) => Some(t),
            None => messages
                .iter()
                .find(|(role, _)| role == "user")
                .map(|(_, content)| content.chars().take(TITLE_CHARS).collect::<String>()),
        };
        tx.execute(
            "UPDATE conversations SET updated = ?1, title = ?2 WHERE id = ?3",
            params![stamp(now), new_title, id],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }
}

fn row_to_conversation(r: &rusqlite::Row<'_>) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: r.get(0)?,
        created: secs(r.get(1)?),
        updated: secs(r.get(2)?),
        title: r.get(3)?,
        model: r.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(role: &str, content: &str) -> (String, String) {
        (role.to_string(), content.to_string())
    }

    #[test]
    fn tenants_see_only_their_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s.sqlite")).expect("open");
        let a = s.create_conversation("a", None, Some("cici"), 100).expect("create");
        let b = s.create_conversation("b", Some("B's"), None, 101).expect("create");
        assert!(a.id.starts_with("conv_") && a.id != b.id);
        assert_eq!(s.list_conversations("a").expect("list"), vec![a.clone()]);
        assert!(matches!(s.get_conversation("a", &b.id), Err(StoreError::NotFound)));
        assert!(matches!(s.append_messages("a", &b.id, &[pair("user", "x")], 102), Err(StoreError::NotFound)));
        assert!(matches!(s.delete_conversation("a", &b.id), Err(StoreError::NotFound)));
        assert_eq!(s.get_conversation("b", &b.id).expect("b still there").1, vec![]);
    }

    #[test]
    fn messages_append_in_order_and_title_comes_from_the_first_user_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s.sqlite")).expect("open");
        let first = s.create_conversation("t", None, None, 10).expect("create");
        let c = s.create_conversation("t", None, None, 11).expect("create");
        let long = "é".repeat(70);
        s.append_messages("t", &c.id, &[pair("system", "be brief"), pair("user", &long), pair("assistant", "ok")], 20)
            .expect("append");
        s.append_messages("t", &c.id, &[pair("user", "again"), pair("assistant", "")], 30).expect("append");
        let (conv, msgs) = s.get_conversation("t", &c.id).expect("get");
        assert_eq!(conv.title, Some("é".repeat(60)));
        assert_eq!(conv.updated, 30);
        let roles: Vec<&str> = msgs.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user", "assistant"]);
        assert_eq!(msgs[3].content, "again");
        // Most recently updated first.
        let ids: Vec<String> = s.list_conversations("t").expect("list").into_iter().map(|c| c.id).collect();
        assert_eq!(ids, [c.id.clone(), first.id]);
        s.delete_conversation("t", &c.id).expect("delete");
        assert!(matches!(s.get_conversation("t", &c.id), Err(StoreError::NotFound)));
        // A bad role is refused whole: nothing of the batch is stored.
        let d = s.create_conversation("t", None, None, 40).expect("create");
        assert!(s.append_messages("t", &d.id, &[pair("user", "a"), pair("robot", "b")], 41).is_err());
        assert!(s.get_conversation("t", &d.id).expect("get").1.is_empty());
    }

    #[test]
    fn full_store_writes_nothing_and_recovers_when_space_is_freed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open_limited(&dir.path().join("s.sqlite"), Some(24)).expect("open");
        let big = "x".repeat(3000);
        let mut made = Vec::new();
        let err = loop {
            let c = match s.create_conversation("t", None, None, 1) {
                Ok(c) => c,
                Err(e) => break e,
            };
            match s.append_messages("t", &c.id, &[pair("user", &big), pair("assistant", &big)], 2) {
                Ok(()) => made.push(c.id),
                Err(e) => {
                    // The failed batch left no partial rows.
                    assert!(s.get_conversation("t", &c.id).expect("get").1.is_empty());
                    break e;
                }
            }
            assert!(made.len() < 1000, "the page limit never hit");
        };
        assert!(matches!(err, StoreError::Full), "{err:?}");
        assert!(!made.is_empty());
        for id in &made {
            assert_eq!(s.get_conversation("t", id).expect("kept").1.len(), 2);
            s.delete_conversation("t", id).expect("delete frees pages");
        }
        let c = s.create_conversation("t", None, None, 3).expect("recovered");
        s.append_messages("t", &c.id, &[pair("user", &big), pair("assistant", &big)], 3).expect("recovered");
        assert_eq!(s.get_conversation("t", &c.id).expect("get").1.len(), 2);
        assert_eq!(s.integrity_check().expect("check"), "ok");
    }
}

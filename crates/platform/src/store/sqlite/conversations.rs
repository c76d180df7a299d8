//! SQLite: conversations and their messages.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::SqliteStore;
use crate::store::conversations::{new_id, title_from, Conversation, Conversations, StoredMessage};
use crate::store::{stamp, unsigned, StoreError};

impl Conversations for SqliteStore {
    fn create_conversation(
        &self,
        tenant: &str,
        title: Option<&str>,
        model: Option<&str>,
        now: u64,
    ) -> Result<Conversation, StoreError> {
        let id = new_id();
        self.conn()
            .execute(
                "INSERT INTO conversations (id, tenant, title, model, created, updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![id, tenant, title, model, stamp(now)],
            )
            .map_err(|e| self.err(e))?;
        let (title, model) = (title.map(str::to_string), model.map(str::to_string));
        Ok(Conversation { id, created: now, updated: now, title, model })
    }

    fn list_conversations(&self, tenant: &str) -> Result<Vec<Conversation>, StoreError> {
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

    fn search_conversations(&self, tenant: &str, text: &str) -> Result<Vec<Conversation>, StoreError> {
        // SQLite's lower() folds ASCII letters only, as the contract says.
        let c = self.conn();
        let mut st = c
            .prepare(
                "SELECT id, created, updated, title, model FROM conversations c WHERE tenant = ?1
                 AND (instr(lower(COALESCE(title, '')), ?2) > 0 OR EXISTS (SELECT 1 FROM messages m
                      WHERE m.conversation = c.id AND instr(lower(m.content), ?2) > 0))
                 ORDER BY updated DESC, rowid DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = st.query_map([tenant, &text.to_ascii_lowercase()], row_to_conversation).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    fn rename_conversation(&self, tenant: &str, id: &str, title: &str) -> Result<Conversation, StoreError> {
        let c = self.conn();
        let n = c
            .execute("UPDATE conversations SET title = ?1 WHERE id = ?2 AND tenant = ?3", [title, id, tenant])
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        c.query_row(
            "SELECT id, created, updated, title, model FROM conversations WHERE id = ?1",
            [id],
            row_to_conversation,
        )
        .map_err(|e| self.err(e))
    }

    fn get_conversation(&self, tenant: &str, id: &str) -> Result<(Conversation, Vec<StoredMessage>), StoreError> {
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
            .query_map([id], |r| {
                Ok(StoredMessage { role: r.get(0)?, content: r.get(1)?, created: unsigned(r.get(2)?) })
            })
            .map_err(|e| self.err(e))?;
        let messages = rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))?;
        Ok((conv, messages))
    }

    fn delete_conversation(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM conversations WHERE id = ?1 AND tenant = ?2", [id, tenant])
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    fn append_messages(
        &self,
        tenant: &str,
        id: &str,
        messages: &[(String, String)],
        now: u64,
    ) -> Result<(), StoreError> {
        let mut c = self.conn();
        // IMMEDIATE: the write lock is taken first. A deferred transaction that reads and then
        // writes gets "busy" at once, without the busy timeout, when another process (a second
        // server on the same file) has written meanwhile.
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
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
        let title = title.or_else(|| title_from(messages));
        tx.execute("UPDATE conversations SET updated = ?1, title = ?2 WHERE id = ?3", params![stamp(now), title, id])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }
}

fn row_to_conversation(r: &rusqlite::Row<'_>) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: r.get(0)?,
        created: unsigned(r.get(1)?),
        updated: unsigned(r.get(2)?),
        title: r.get(3)?,
        model: r.get(4)?,
    })
}

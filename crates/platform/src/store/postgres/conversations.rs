//! PostgreSQL: conversations and their messages.

use super::{Failure, PgStore};
use crate::store::conversations::{new_id, title_from, Conversation, Conversations, StoredMessage};
use crate::store::{stamp, unsigned, StoreError};

fn to_conversation(r: &tokio_postgres::Row) -> Conversation {
    Conversation {
        id: r.get(0),
        created: unsigned(r.get(1)),
        updated: unsigned(r.get(2)),
        title: r.get(3),
        model: r.get(4),
    }
}

const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";

impl Conversations for PgStore {
    fn create_conversation(
        &self,
        tenant: &str,
        title: Option<&str>,
        model: Option<&str>,
        now: u64,
    ) -> Result<Conversation, StoreError> {
        let conv = Conversation {
            id: new_id(),
            created: now,
            updated: now,
            title: title.map(str::to_string),
            model: model.map(str::to_string),
        };
        let tenant = tenant.to_string();
        self.run(|pool| async move {
            let c = pool.get().await?;
            c.execute(
                "INSERT INTO conversations (id, tenant, title, model, created, updated)
                 VALUES ($1, $2, $3, $4, $5, $5)",
                &[&conv.id, &tenant, &conv.title, &conv.model, &stamp(now)],
            )
            .await?;
            Ok(conv)
        })
    }

    fn list_conversations(&self, tenant: &str) -> Result<Vec<Conversation>, StoreError> {
        let tenant = tenant.to_string();
        self.run(|pool| async move {
            let c = pool.get().await?;
            let rows = c
                .query(
                    "SELECT id, created, updated, title, model FROM conversations WHERE tenant = $1
                     ORDER BY updated DESC, n DESC",
                    &[&tenant],
                )
                .await?;
            Ok(rows.iter().map(to_conversation).collect())
        })
    }

    fn search_conversations(&self, tenant: &str, text: &str) -> Result<Vec<Conversation>, StoreError> {
        let (tenant, needle) = (tenant.to_string(), text.to_ascii_lowercase());
        self.run(|pool| async move {
            let c = pool.get().await?;
            // translate(), not lower(): ASCII letters only, as the contract says, whatever the
            // database's locale.
            let rows = c
                .query(
                    "SELECT id, created, updated, title, model FROM conversations c WHERE tenant = $1
                     AND (strpos(translate(COALESCE(title, ''), $3, $4), $2) > 0 OR EXISTS (SELECT 1
                          FROM messages m WHERE m.conversation = c.id
                          AND strpos(translate(m.content, $3, $4), $2) > 0))
                     ORDER BY updated DESC, n DESC",
                    &[&tenant, &needle, &UPPER, &LOWER],
                )
                .await?;
            Ok(rows.iter().map(to_conversation).collect())
        })
    }

    fn rename_conversation(&self, tenant: &str, id: &str, title: &str) -> Result<Conversation, StoreError> {
        let (tenant, id, title) = (tenant.to_string(), id.to_string(), title.to_string());
        self.run(|pool| async move {
            let c = pool.get().await?;
            let row = c
                .query_opt(
                    "UPDATE conversations SET title = $1 WHERE id = $2 AND tenant = $3
                     RETURNING id, created, updated, title, model",
                    &[&title, &id, &tenant],
                )
                .await?
                .ok_or(Failure::NotFound)?;
            Ok(to_conversation(&row))
        })
    }

    fn get_conversation(&self, tenant: &str, id: &str) -> Result<(Conversation, Vec<StoredMessage>), StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.run(|pool| async move {
            let mut c = pool.get().await?;
            // One snapshot for the header and the messages.
            let tx =
                c.build_transaction().isolation_level(tokio_postgres::IsolationLevel::RepeatableRead).start().await?;
            let conv = tx
                .query_opt(
                    "SELECT id, created, updated, title, model FROM conversations WHERE id = $1 AND tenant = $2",
                    &[&id, &tenant],
                )
                .await?
                .ok_or(Failure::NotFound)?;
            let rows = tx
                .query("SELECT role, content, created FROM messages WHERE conversation = $1 ORDER BY seq", &[&id])
                .await?;
            let messages = rows
                .iter()
                .map(|r| StoredMessage { role: r.get(0), content: r.get(1), created: unsigned(r.get(2)) })
                .collect();
            tx.commit().await?;
            Ok((to_conversation(&conv), messages))
        })
    }

    fn delete_conversation(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.run(|pool| async move {
            let c = pool.get().await?;
            match c.execute("DELETE FROM conversations WHERE id = $1 AND tenant = $2", &[&id, &tenant]).await? {
                0 => Err(Failure::NotFound),
                _ => Ok(()),
            }
        })
    }

    fn append_messages(
        &self,
        tenant: &str,
        id: &str,
        messages: &[(String, String)],
        now: u64,
    ) -> Result<(), StoreError> {
        let (tenant, id, messages) = (tenant.to_string(), id.to_string(), messages.to_vec());
        self.run(|pool| async move {
            let mut c = pool.get().await?;
            let tx = c.transaction().await?;
            // The row lock orders appends to one conversation from every replica.
            let row = tx
                .query_opt("SELECT title FROM conversations WHERE id = $1 AND tenant = $2 FOR UPDATE", &[&id, &tenant])
                .await?
                .ok_or(Failure::NotFound)?;
            let title: Option<String> = row.get(0);
            let next: i64 = tx
                .query_one("SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation = $1", &[&id])
                .await?
                .get(0);
            let insert = tx
                .prepare("INSERT INTO messages (conversation, seq, role, content, created) VALUES ($1, $2, $3, $4, $5)")
                .await?;
            for (i, (role, content)) in messages.iter().enumerate() {
                tx.execute(&insert, &[&id, &(next + i as i64), role, content, &stamp(now)]).await?;
            }
            let title = title.or_else(|| title_from(&messages));
            tx.execute("UPDATE conversations SET updated = $1, title = $2 WHERE id = $3", &[&stamp(now), &title, &id])
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }
}

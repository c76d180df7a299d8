//! Conversations and their messages, each tenant seeing only its own.

use serde::Serialize;

use super::StoreError;

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

/// The roles a stored message may have.
pub const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// A new conversation's id: `conv_` and 24 random letters and digits.
pub fn new_id() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    format!("conv_{}", Alphanumeric.sample_string(&mut rand::thread_rng(), 24))
}

/// The title an untitled conversation takes from a batch of messages: the first user
/// message's first [`TITLE_CHARS`] characters.
pub fn title_from(messages: &[(String, String)]) -> Option<String> {
    messages.iter().find(|(role, _)| role == "user").map(|(_, content)| content.chars().take(TITLE_CHARS).collect())
}

/// A tenant's conversations.
pub trait Conversations {
    /// Creates a conversation for `tenant`; returns it once committed.
    fn create_conversation(
        &self,
        tenant: &str,
        title: Option<&str>,
        model: Option<&str>,
        now: u64,
    ) -> Result<Conversation, StoreError>;

    /// The tenant's conversations, most recently updated first (the newer of two updated in
    /// the same second first).
    fn list_conversations(&self, tenant: &str) -> Result<Vec<Conversation>, StoreError>;

    /// The tenant's conversations whose title or any message contains `text`, ordered as
    /// [`Conversations::list_conversations`]. Matching is by substring, ignoring the case of
    /// ASCII letters (so both backends agree whatever the database's locale).
    fn search_conversations(&self, tenant: &str, text: &str) -> Result<Vec<Conversation>, StoreError>;

    /// Gives one of the tenant's conversations a new title (its `updated` time stays: renaming
    /// does not move it up the list); returns it.
    fn rename_conversation(&self, tenant: &str, id: &str, title: &str) -> Result<Conversation, StoreError>;

    /// One of the tenant's conversations with its messages in order; [`StoreError::NotFound`]
    /// for an unknown id and for another tenant's alike.
    fn get_conversation(&self, tenant: &str, id: &str) -> Result<(Conversation, Vec<StoredMessage>), StoreError>;

    /// Deletes one of the tenant's conversations and its messages.
    fn delete_conversation(&self, tenant: &str, id: &str) -> Result<(), StoreError>;

    /// Appends `messages` (role, content) to one of the tenant's conversations in one
    /// transaction (a role outside [`ROLES`] fails it whole); an untitled conversation takes
    /// its title from [`title_from`]. Returns once committed.
    fn append_messages(
        &self,
        tenant: &str,
        id: &str,
        messages: &[(String, String)],
        now: u64,
    ) -> Result<(), StoreError>;
}

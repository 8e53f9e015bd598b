//! Key names in the store. Every key of one deployment carries the same hash tag, `{PREFIX}`, so
//! that the one script touching a client's bucket, a tool's bucket and the shared quota stays in
//! one Redis Cluster slot; every variable part is escaped, so nothing a client or a tool name
//! contains can reach outside its own key.
//!
//! Layout: `{PREFIX}:quota:NAME`, `{PREFIX}:client:KEY`, `{PREFIX}:tool:NAME`,
//! `{PREFIX}:session:ID` (an MCP session's record, [`super::sessions`]).

use std::fmt::Write;

use crate::mcp::ClientKey;

/// The key names of one deployment.
#[derive(Debug, Clone)]
pub struct Keys {
    tag: String,
}

/// Appends `s` with every byte outside `[A-Za-z0-9_.-]` as `%XX` (injective: `%` is escaped).
pub fn escape_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

impl Keys {
    /// Keys under `prefix` (escaped).
    pub fn new(prefix: &str) -> Keys {
        let mut tag = String::from("{");
        escape_into(&mut tag, prefix);
        tag.push('}');
        Keys { tag }
    }

    /// The quota named `name`.
    pub fn quota(&self, name: &str) -> String {
        let mut k = format!("{}:quota:", self.tag);
        escape_into(&mut k, name);
        k
    }

    /// The per-client bucket of `client`.
    pub fn client(&self, client: ClientKey) -> String {
        let mut k = format!("{}:client:", self.tag);
        match client {
            ClientKey::Ip(ip) => {
                k.push_str("ip:");
                escape_into(&mut k, &ip.to_string());
            }
            ClientKey::Token(i) => {
                let _ = write!(k, "token:{i}");
            }
            ClientKey::Local => k.push_str("local"),
        }
        k
    }

    /// The record of MCP session `id`.
    pub fn session(&self, id: &str) -> String {
        let mut k = format!("{}:session:", self.tag);
        escape_into(&mut k, id);
        k
    }

    /// The per-tool bucket of `tool`.
    pub fn tool(&self, tool: &str) -> String {
        let mut k = format!("{}:tool:", self.tag);
        escape_into(&mut k, tool);
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hash_tag_and_nothing_escapes_its_place() {
        let k = Keys::new("vitals");
        assert_eq!(
            k.quota("daily_tool_calls"),
            "{vitals}:quota:daily_tool_calls"
        );
        assert_eq!(
            k.client(ClientKey::Ip("2001:db8::".parse().unwrap())),
            "{vitals}:client:ip:2001%3Adb8%3A%3A"
        );
        assert_eq!(k.client(ClientKey::Token(7)), "{vitals}:client:token:7");
        assert_eq!(k.client(ClientKey::Local), "{vitals}:client:local");
        assert_eq!(k.tool("a}:b{%"), "{vitals}:tool:a%7D%3Ab%7B%25");
        assert_eq!(Keys::new("a}b").quota("q"), "{a%7Db}:quota:q");
        assert_eq!(
            k.session("1b4e28ba-2fa1-11d2-883f-0016d3cca427"),
            "{vitals}:session:1b4e28ba-2fa1-11d2-883f-0016d3cca427"
        );
        assert_eq!(k.session("x}:quota:q"), "{vitals}:session:x%7D%3Aquota%3Aq");
        // Distinct names stay distinct keys.
        assert_ne!(k.tool("a%3A"), k.tool("a:"));
    }
}

//! Bearer tokens for `/mcp` (`--mcp-token`, `--mcp-token-file`). When any is configured, a
//! request to `/mcp` without one of them gets 401 with `WWW-Authenticate: Bearer`, and the
//! token's identity (not the remote address) is the client for per-client rate limits.
//!
//! Invariant: every configured token is compared, each in constant time, whatever the outcome,
//! so the time taken does not tell which token (or which prefix) matched.

use std::path::Path;

use http::HeaderMap;
use vitals_std::http::{bearer_token, token_matches};

/// The configured tokens; empty means `/mcp` needs none.
#[derive(Debug, Clone, Default)]
pub struct McpTokens {
    tokens: Vec<Vec<u8>>,
}

/// Why a token list could not be built.
#[derive(Debug)]
pub enum TokenError {
    /// A token is empty or blank.
    Empty {
        /// Where it came from (`--mcp-token` or `FILE:LINE`).
        source: String,
    },
    /// The token file could not be read.
    Unreadable {
        /// The file.
        file: String,
        /// Why.
        error: std::io::Error,
    },
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Empty { source } => write!(f, "{source}: an MCP token must not be empty"),
            TokenError::Unreadable { file, error } => write!(f, "{file}: cannot read: {error}"),
        }
    }
}

impl std::error::Error for TokenError {}

impl McpTokens {
    /// Tokens from the flag values and, when given, a file with one token per line (blank lines
    /// and lines starting with `#` are skipped; surrounding whitespace is trimmed).
    pub fn load(flags: &[String], file: Option<&Path>) -> Result<Self, TokenError> {
        let mut tokens = Vec::new();
        for t in flags {
            if t.trim().is_empty() {
                return Err(TokenError::Empty {
                    source: "--mcp-token".into(),
                });
            }
            tokens.push(t.trim().as_bytes().to_vec());
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|error| TokenError::Unreadable {
                file: path.display().to_string(),
                error,
            })?;
            for line in text.lines() {
                let t = line.trim();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                tokens.push(t.as_bytes().to_vec());
            }
            if tokens.is_empty() {
                return Err(TokenError::Empty {
                    source: path.display().to_string(),
                });
            }
        }
        Ok(McpTokens { tokens })
    }

    /// Whether `/mcp` needs a token.
    pub fn required(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The index of the token `headers` carry (`Authorization: Bearer TOKEN`), if it is one of
    /// ours.
    pub fn identify(&self, headers: &HeaderMap) -> Option<u32> {
        let given = bearer_token(headers)?;
        let mut found = None;
        for (i, t) in self.tokens.iter().enumerate() {
            if token_matches(given, t) && found.is_none() {
                found = Some(i as u32);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn tokens_identify_their_holder() {
        let dir = std::env::temp_dir().join(format!("vitals-tokens-{}", std::process::id()));
        std::fs::write(&dir, "# team tokens\n\n  beta  \ngamma\n").unwrap();
        let t = McpTokens::load(&["alpha".into()], Some(&dir)).unwrap();
        assert!(t.required());
        assert_eq!(t.identify(&bearer("alpha")), Some(0));
        assert_eq!(t.identify(&bearer("beta")), Some(1));
        assert_eq!(t.identify(&bearer("gamma")), Some(2));
        assert_eq!(t.identify(&bearer("alph")), None);
        assert_eq!(t.identify(&bearer("")), None);
        assert_eq!(t.identify(&HeaderMap::new()), None);
        assert!(McpTokens::load(&[" ".into()], None).is_err());
        std::fs::write(&dir, "# nothing\n").unwrap();
        assert!(McpTokens::load(&[], Some(&dir)).is_err());
        std::fs::remove_file(&dir).unwrap();
        assert!(!McpTokens::default().required());
    }
}

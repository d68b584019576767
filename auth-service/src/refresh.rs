//! Refresh tokens: 256 random bits, base64url-encoded for the client, stored only as
//! their SHA-256 hash.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::store::TokenHash;

/// A freshly issued refresh token: the secret for the client and the hash to store.
pub struct RefreshToken {
    /// The opaque token handed to the client.
    pub token: String,
    /// Its SHA-256 hash.
    pub hash: TokenHash,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// A new random token.
    pub fn generate() -> Self {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        let token = URL_SAFE_NO_PAD.encode(secret);
        let hash = hash_token(&token);
        Self { token, hash }
    }
}

/// The stored form of a presented token.
pub fn hash_token(token: &str) -> TokenHash {
    TokenHash(Sha256::digest(token.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_token_carries_256_bits() {
        let token = RefreshToken::generate();
        assert_eq!(URL_SAFE_NO_PAD.decode(&token.token).unwrap().len(), 32);
    }

    #[test]
    fn two_refresh_tokens_differ() {
        assert_ne!(
            RefreshToken::generate().token,
            RefreshToken::generate().token
        );
    }

    #[test]
    fn the_stored_hash_is_the_sha256_of_the_token() {
        let token = RefreshToken::generate();
        assert_eq!(hash_token(&token.token), token.hash);
        assert_ne!(hash_token("other"), token.hash);
    }
}

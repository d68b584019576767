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

/// The new token of a rotation, sealed under the token it replaced (`replaced`, as the
/// client presented it): its secret XOR a pad only that token's holder can derive. The
/// store keeps the seal, never the new token itself.
pub fn seal(successor: &RefreshToken, replaced: &str) -> [u8; 32] {
    let secret = URL_SAFE_NO_PAD
        .decode(&successor.token)
        .expect("issued tokens are base64url");
    xor(&pad(replaced), &secret)
}

/// Opens a [`seal`] with the replaced token.
pub fn open(sealed: &[u8; 32], replaced: &str) -> RefreshToken {
    let secret = xor(&pad(replaced), sealed);
    let token = URL_SAFE_NO_PAD.encode(secret);
    let hash = hash_token(&token);
    RefreshToken { token, hash }
}

fn pad(replaced: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"random-chats refresh successor\0")
        .chain_update(replaced.as_bytes())
        .finalize()
        .into()
}

fn xor(pad: &[u8; 32], bytes: &[u8]) -> [u8; 32] {
    let mut out = *pad;
    for (o, b) in out.iter_mut().zip(bytes) {
        *o ^= b;
    }
    out
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
    fn a_sealed_successor_opens_only_with_the_replaced_token() {
        let replaced = RefreshToken::generate();
        let successor = RefreshToken::generate();
        let sealed = seal(&successor, &replaced.token);
        let opened = open(&sealed, &replaced.token);
        assert_eq!(opened.token, successor.token);
        assert_eq!(opened.hash, successor.hash);
        // The seal alone, or with any other token, yields something else.
        assert_ne!(
            open(&sealed, &RefreshToken::generate().token).hash,
            successor.hash
        );
        assert_ne!(URL_SAFE_NO_PAD.encode(sealed), successor.token);
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

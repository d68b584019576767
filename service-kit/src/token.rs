//! Access tokens: claims, signing (auth-service only), JWKS, and local verification.
//!
//! Access tokens are EdDSA (Ed25519) JWTs with header `typ: at+jwt` and a `kid`; exactly
//! one algorithm is accepted (RFC 8725), so `alg: none`, HS256 and anything else fail.
//! The public keys are published as a JWKS document; every service and the gateway verify
//! tokens locally against it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wire::api::auth::{ContentFilter, Role};

use crate::revocation::Revocations;

/// Default `iss` of access tokens.
pub const DEFAULT_ISSUER: &str = "random-chats-auth";
/// Default `aud` of access tokens.
pub const DEFAULT_AUDIENCE: &str = "random-chats";
/// The `typ` claim of an access token.
pub const ACCESS_TOKEN_TYPE: &str = "access";
/// The JOSE header `typ` of an access token (RFC 9068).
pub const ACCESS_TOKEN_HEADER_TYPE: &str = "at+jwt";
/// Clock skew tolerated when checking `exp`, in seconds.
pub const LEEWAY_SECS: u64 = 5;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Unique token id.
    pub jti: Uuid,
    /// Always [`ACCESS_TOKEN_TYPE`].
    pub typ: String,
    /// The refresh session this token was issued under.
    pub sid: Uuid,
    /// What the account may do beyond chatting.
    #[serde(default)]
    pub role: Role,
    /// The user's content filter level, applied to what they receive.
    #[serde(default)]
    pub cf: ContentFilter,
}

/// Who a token is issued to: the claims that vary per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The user.
    pub user_id: Uuid,
    /// The refresh session.
    pub session_id: Uuid,
    /// The account's role.
    pub role: Role,
    /// The user's content filter level.
    pub content_filter: ContentFilter,
}

impl Grant {
    /// A plain user's grant with the default content filter.
    pub fn user(user_id: Uuid, session_id: Uuid) -> Self {
        Self {
            user_id,
            session_id,
            role: Role::User,
            content_filter: ContentFilter::default(),
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Bad signature, wrong algorithm, wrong `iss`/`aud`/`typ`, unknown key, malformed.
    #[error("the access token is invalid")]
    Invalid,
    /// The token has expired.
    #[error("the access token has expired")]
    Expired,
    /// No verification keys are loaded yet (the JWKS could not be fetched).
    #[error("token verification keys are not available")]
    KeysUnavailable,
    /// The token's session has ended (log out, password change, session deleted, reuse).
    #[error("the session of the access token has ended")]
    SessionEnded,
}

/// Signs access tokens with an Ed25519 key. Lives in auth-service only.
#[derive(Clone)]
pub struct TokenSigner {
    kid: String,
    encoding: Arc<EncodingKey>,
    public_key: [u8; 32],
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Why a signing key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid Ed25519 signing key: {0}")]
pub struct KeyError(String);

impl TokenSigner {
    /// A fresh random key.
    pub fn generate(issuer: &str, audience: &str) -> Self {
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        Self::from_signing_key(SigningKey::from_bytes(&seed), issuer, audience)
    }

    /// Loads a PKCS#8 PEM Ed25519 private key.
    pub fn from_pem(pem: &str, issuer: &str, audience: &str) -> Result<Self, KeyError> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError(e.to_string()))?;
        Ok(Self::from_signing_key(key, issuer, audience))
    }

    fn from_signing_key(key: SigningKey, issuer: &str, audience: &str) -> Self {
        let der = key
            .to_pkcs8_der()
            .expect("an in-memory Ed25519 key always encodes as PKCS#8");
        let public_key = key.verifying_key().to_bytes();
        Self {
            kid: key_id(&public_key),
            encoding: Arc::new(EncodingKey::from_ed_der(der.as_bytes())),
            public_key,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    /// The key id (`kid`) put in every token header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document publishing this key's public half.
    pub fn jwks(&self) -> JwkSet {
        let jwk = serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.public_key),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        });
        serde_json::from_value(serde_json::json!({ "keys": [jwk] }))
            .expect("a well-formed OKP JWK always parses")
    }

    /// Signs a plain user's access token for `user_id` in session `session_id`, valid for
    /// `ttl`.
    pub fn sign(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        ttl: std::time::Duration,
    ) -> (String, AccessClaims) {
        self.sign_grant(&Grant::user(user_id, session_id), ttl)
    }

    /// Signs an access token for `grant`, valid for `ttl`.
    pub fn sign_grant(&self, grant: &Grant, ttl: std::time::Duration) -> (String, AccessClaims) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: grant.user_id,
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            iat: now,
            jti: Uuid::new_v4(),
            typ: ACCESS_TOKEN_TYPE.to_owned(),
            sid: grant.session_id,
            role: grant.role,
            cf: grant.content_filter,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some(ACCESS_TOKEN_HEADER_TYPE.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .expect("signing with a valid Ed25519 key cannot fail");
        (token, claims)
    }
}

/// A PKCS#8 PEM private key, for persisting a generated signing key.
pub struct SigningKeyPem(String);

impl std::fmt::Debug for SigningKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKeyPem([redacted])")
    }
}

impl SigningKeyPem {
    /// Generates a new random Ed25519 key as PEM.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        let pem = SigningKey::from_bytes(&seed)
            .to_pkcs8_pem(Default::default())
            .expect("an in-memory Ed25519 key always encodes as PEM");
        Self(pem.to_string())
    }

    /// The PEM text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn key_id(public_key: &[u8; 32]) -> String {
    // A short, stable id derived from the public key, so restarts with the same key keep it.
    URL_SAFE_NO_PAD.encode(&public_key[..12])
}

/// Verifies access tokens locally against a set of published keys. Cheap to clone.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Arc<RwLock<HashMap<String, DecodingKey>>>,
    validation: Arc<Validation>,
    revocations: Revocations,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.keys.read().map(|k| k.len()).unwrap_or(0);
        f.debug_struct("TokenVerifier")
            .field("keys", &count)
            .finish()
    }
}

impl TokenVerifier {
    /// A verifier with no keys yet, expecting `issuer` and `audience`.
    pub fn new(issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        Self {
            keys: Arc::new(RwLock::new(HashMap::new())),
            validation: Arc::new(validation),
            revocations: Revocations::new(),
        }
    }

    /// The ended sessions this verifier refuses (shared by its clones).
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// A verifier trusting exactly the keys of `jwks`.
    pub fn from_jwks(issuer: &str, audience: &str, jwks: &JwkSet) -> Result<Self, TokenError> {
        let verifier = Self::new(issuer, audience);
        verifier.set_jwks(jwks)?;
        Ok(verifier)
    }

    /// Replaces the trusted keys with the Ed25519 keys of `jwks`; returns how many were loaded.
    pub fn set_jwks(&self, jwks: &JwkSet) -> Result<usize, TokenError> {
        let mut loaded = HashMap::new();
        for jwk in &jwks.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                loaded.insert(kid, key);
            }
        }
        if loaded.is_empty() {
            return Err(TokenError::KeysUnavailable);
        }
        let count = loaded.len();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        Ok(count)
    }

    /// Whether any key is loaded.
    pub fn is_ready(&self) -> bool {
        !self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Verifies signature, algorithm, `kid`, `typ`, `iss`, `aud` and `exp`, and that the
    /// token's session has not ended.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        if header.typ.as_deref() != Some(ACCESS_TOKEN_HEADER_TYPE) {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        if keys.is_empty() {
            return Err(TokenError::KeysUnavailable);
        }
        let key = keys.get(&kid).ok_or(TokenError::Invalid)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            },
        )?;
        if data.claims.typ != ACCESS_TOKEN_TYPE {
            return Err(TokenError::Invalid);
        }
        if self.revocations.is_ended(data.claims.sid) {
            return Err(TokenError::SessionEnded);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pair() -> (TokenSigner, TokenVerifier) {
        let signer = TokenSigner::generate(DEFAULT_ISSUER, DEFAULT_AUDIENCE);
        let verifier =
            TokenVerifier::from_jwks(DEFAULT_ISSUER, DEFAULT_AUDIENCE, &signer.jwks()).unwrap();
        (signer, verifier)
    }

    #[test]
    fn a_signed_token_verifies() {
        let (signer, verifier) = pair();
        let user = Uuid::new_v4();
        let (token, claims) = signer.sign(user, Uuid::new_v4(), Duration::from_secs(60));
        assert_eq!(verifier.verify(&token).unwrap(), claims);
        assert_eq!(claims.sub, user);
    }

    #[test]
    fn a_token_from_another_key_is_invalid() {
        let (_, verifier) = pair();
        let other = TokenSigner::generate(DEFAULT_ISSUER, DEFAULT_AUDIENCE);
        let (token, _) = other.sign(Uuid::new_v4(), Uuid::new_v4(), Duration::from_secs(60));
        assert_eq!(verifier.verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn a_token_for_another_audience_is_invalid() {
        let (_, verifier) = pair();
        let signer = TokenSigner::generate(DEFAULT_ISSUER, "someone-else");
        verifier.set_jwks(&signer.jwks()).unwrap();
        let (token, _) = signer.sign(Uuid::new_v4(), Uuid::new_v4(), Duration::from_secs(60));
        assert_eq!(verifier.verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn an_unsigned_token_is_invalid() {
        let (signer, verifier) = pair();
        let (token, _) = signer.sign(Uuid::new_v4(), Uuid::new_v4(), Duration::from_secs(60));
        let payload = token.split('.').nth(1).unwrap();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
        assert_eq!(
            verifier.verify(&format!("{header}.{payload}.")),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn a_verifier_without_keys_reports_unavailable() {
        let (signer, _) = pair();
        let empty = TokenVerifier::new(DEFAULT_ISSUER, DEFAULT_AUDIENCE);
        let (token, _) = signer.sign(Uuid::new_v4(), Uuid::new_v4(), Duration::from_secs(60));
        assert_eq!(empty.verify(&token), Err(TokenError::KeysUnavailable));
    }

    #[test]
    fn a_pem_key_round_trips() {
        let pem = SigningKeyPem::generate();
        let a = TokenSigner::from_pem(pem.expose(), DEFAULT_ISSUER, DEFAULT_AUDIENCE).unwrap();
        let b = TokenSigner::from_pem(pem.expose(), DEFAULT_ISSUER, DEFAULT_AUDIENCE).unwrap();
        assert_eq!(a.kid(), b.kid());
    }
}

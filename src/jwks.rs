//! JSON Web Key Set documents: parsing an issuer's published keys into keys that verify signatures. Pure
//! data, no I/O: config validation checks a mounted JWKS with it, `identity/` fetches and caches key sets.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

/// The algorithms an RSA key may sign with.
pub const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Why a document is not a usable key set.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The text is not a JWKS.
    #[error("{source_name} is not a JSON Web Key Set: {source}")]
    Parse {
        /// Where it came from.
        source_name: String,
        /// The parser's message.
        source: serde_json::Error,
    },
    /// The set holds no key usable for signatures mcplex accepts.
    #[error("{source_name} holds no RSA, EC or OKP signing key")]
    NoKeys {
        /// Where it came from.
        source_name: String,
    },
}

/// One usable key.
pub struct Key {
    /// The `kid`, when the set gives one.
    pub kid: Option<String>,
    /// The verifying key.
    pub key: DecodingKey,
    /// The algorithms a token signed with this key may name.
    pub algorithms: Vec<Algorithm>,
}

/// A parsed key set.
#[derive(Default)]
pub struct Keys(Vec<Key>);

impl Keys {
    /// Parses a JWKS document. Keys of unknown type and symmetric keys are left out: a key the
    /// issuer publishes must never be usable as an HMAC secret.
    pub fn parse(text: &[u8], source_name: &str) -> Result<Self, JwksError> {
        let set: JwkSet = serde_json::from_slice(text).map_err(|source| JwksError::Parse {
            source_name: source_name.to_owned(),
            source,
        })?;
        let keys: Vec<Key> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let family: Vec<Algorithm> = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => RSA_ALGORITHMS.to_vec(),
                    AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                        EllipticCurve::P256 => vec![Algorithm::ES256],
                        EllipticCurve::P384 => vec![Algorithm::ES384],
                        _ => return None,
                    },
                    AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
                    _ => return None,
                };
                // A key that names its algorithm is used with that one only.
                let algorithms = match jwk.common.key_algorithm.map(Algorithm::try_from) {
                    Some(Ok(alg)) if family.contains(&alg) => vec![alg],
                    Some(_) => return None,
                    None => family,
                };
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some(Key {
                    kid: jwk.common.key_id.clone(),
                    key,
                    algorithms,
                })
            })
            .collect();
        if keys.is_empty() {
            return Err(JwksError::NoKeys {
                source_name: source_name.to_owned(),
            });
        }
        Ok(Self(keys))
    }

    /// The keys that may have signed a token with this `kid` and algorithm.
    pub fn candidates<'a>(&'a self, kid: Option<&'a str>, alg: Algorithm) -> impl Iterator<Item = &'a Key> + 'a {
        self.0
            .iter()
            .filter(move |k| k.algorithms.contains(&alg) && (kid.is_none() || k.kid.as_deref() == kid))
    }
}

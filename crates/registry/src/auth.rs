//! Bearer tokens: generation, hashed storage form, roles and namespace globs.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::RegistryError;

/// Every token starts with this, so leaked tokens are easy to recognise in logs and scanners.
const PREFIX: &str = "mcpr_";
/// Hex digits of the public id at the start of the secret, used to find the row without the secret.
const ID_LEN: usize = 16;
/// 256 random bits, hex encoded.
const SECRET_LEN: usize = 64;

/// What a token may do. Ordered: each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Reader,
    Publisher,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Publisher => "publisher",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reader" => Ok(Self::Reader),
            "publisher" => Ok(Self::Publisher),
            "admin" => Ok(Self::Admin),
            other => Err(RegistryError::Config(format!(
                "unknown role '{other}'; use reader, publisher or admin"
            ))),
        }
    }
}

/// A token as stored: never the secret itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub hash: String,
    pub role: Role,
    pub namespace: Option<String>,
}

/// The identity a request acts as once its token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: String,
    pub role: Role,
    pub namespace: Option<String>,
}

impl Principal {
    /// Whether this principal may write every server name, so no record need be read to check.
    pub fn may_write_all(&self) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Publisher => self.namespace.is_none(),
            Role::Reader => false,
        }
    }

    /// Whether this principal may write `server_name`: admins always, publishers inside their glob.
    pub fn may_write(&self, server_name: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Publisher => self
                .namespace
                .as_deref()
                .is_none_or(|glob| glob_match(glob, server_name)),
            Role::Reader => false,
        }
    }
}

/// A freshly generated token: the secret to hand out once, and the record to store.
pub fn generate(
    role: Role,
    namespace: Option<String>,
) -> Result<(String, TokenRecord), RegistryError> {
    if let Some(ns) = &namespace {
        validate_namespace(ns)?;
    }
    let mut bytes = [0u8; SECRET_LEN / 2];
    getrandom::fill(&mut bytes).map_err(|e| {
        RegistryError::Config(format!("the operating system gave no random bytes: {e}"))
    })?;
    let secret = hex::encode(bytes);
    let token = format!("{PREFIX}{secret}");
    let record = TokenRecord {
        id: secret[..ID_LEN].to_owned(),
        hash: hash(&token),
        role,
        namespace,
    };
    Ok((token, record))
}

/// The public id of a token (its first hex digits), or `None` when it is not shaped like one.
pub fn token_id(token: &str) -> Option<&str> {
    let secret = token.strip_prefix(PREFIX)?;
    let well_formed = secret.len() == SECRET_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then(|| &secret[..ID_LEN])
}

/// Whether `token` is the one `record` was made from, compared in constant time.
pub fn verify(token: &str, record: &TokenRecord) -> bool {
    hash(token).as_bytes().ct_eq(record.hash.as_bytes()).into()
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A namespace glob: server-name characters plus `*`, at most 200 characters.
pub fn validate_namespace(glob: &str) -> Result<(), RegistryError> {
    let ok = !glob.is_empty()
        && glob.len() <= 200
        && glob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b'*'));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Config(format!(
            "namespace '{glob}' is not a glob of server names; use letters, digits, '.', '_', '-', '/' and '*', like io.example/*"
        )))
    }
}

/// Matches `*` (any run of characters, including '/') against `name`; everything else literally.
pub fn glob_match(glob: &str, name: &str) -> bool {
    let (g, n) = (glob.as_bytes(), name.as_bytes());
    let (mut gi, mut ni) = (0, 0);
    // Where the last star was and which name position it has been stretched to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() && g[gi] == b'*' {
            star = Some((gi, ni));
            gi += 1;
        } else if gi < g.len() && g[gi] == n[ni] {
            gi += 1;
            ni += 1;
        } else if let Some((sg, sn)) = star {
            gi = sg + 1;
            ni = sn + 1;
            star = Some((sg, sn + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let cases = [
            (
                "io.example/*",
                "io.example/weather",
                true,
                "namespace prefix",
            ),
            (
                "io.example/*",
                "io.example.evil/x",
                false,
                "a longer namespace is another owner",
            ),
            ("io.example/*", "io.example/", true, "star matches empty"),
            ("io.example/weather", "io.example/weather", true, "literal"),
            (
                "io.example/weather",
                "io.example/weather2",
                false,
                "literal is exact",
            ),
            ("*/weather", "com.x/weather", true, "leading star"),
            ("io.*.a/*b", "io.x.y.a/cb", true, "two stars backtrack"),
            ("*", "anything/at-all", true, "star alone"),
            ("io.example/*", "com.other/x", false, "other namespace"),
        ];
        for (glob, name, want, why) in cases {
            assert_eq!(glob_match(glob, name), want, "{why}: {glob} vs {name}");
        }
    }

    #[test]
    fn generated_tokens_verify_and_others_do_not() {
        let (token, record) = generate(Role::Publisher, Some("io.example/*".into())).unwrap();
        assert_eq!(token_id(&token), Some(record.id.as_str()));
        assert!(verify(&token, &record));
        let (other, _) = generate(Role::Publisher, None).unwrap();
        assert!(!verify(&other, &record));
        assert_ne!(record.hash, token, "the secret itself is never stored");
    }

    #[test]
    fn malformed_tokens_have_no_id() {
        for bad in [
            "",
            "mcpr_",
            "mcpr_XYZ",
            "bearer",
            &format!("mcpr_{}", "A".repeat(64)),
        ] {
            assert_eq!(token_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn roles_and_namespaces() {
        let p = |role, ns: Option<&str>| Principal {
            token_id: "t".into(),
            role,
            namespace: ns.map(str::to_owned),
        };
        assert!(
            p(Role::Admin, Some("io.a/*")).may_write("com.b/x"),
            "admin ignores namespace"
        );
        assert!(
            p(Role::Publisher, None).may_write("com.b/x"),
            "no namespace means any"
        );
        assert!(!p(Role::Publisher, Some("io.a/*")).may_write("com.b/x"));
        assert!(!p(Role::Reader, None).may_write("io.a/x"));
        let all = [
            (Role::Admin, Some("io.a/*"), true, "admins write anything"),
            (
                Role::Publisher,
                None,
                true,
                "an unscoped publisher writes anything",
            ),
            (
                Role::Publisher,
                Some("*"),
                false,
                "a glob is checked, even one matching all",
            ),
            (Role::Reader, None, false, "readers write nothing"),
        ];
        for (role, ns, want, why) in all {
            assert_eq!(p(role, ns).may_write_all(), want, "{why}");
        }
        assert!("owner".parse::<Role>().is_err());
        assert!(validate_namespace("io.example/*").is_ok());
        assert!(validate_namespace("io example").is_err());
    }
}

//! Who is at the pages: argon2id password hashes, sessions kept in the database (a cookie
//! holds a random token; the database holds its SHA-256), CSRF tokens, and the throttle on
//! failed logins per user and per address.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "pasarela_session";
/// Name of the cookie that carries the login form's CSRF token (there is no session yet).
pub const LOGIN_COOKIE: &str = "pasarela_login";
/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(12 * 3600);
/// `last_seen` is written at most this often (each write is a commit).
pub const TOUCH_EVERY_MS: i64 = 60_000;
/// Shortest password `user add` and `user passwd` accept.
pub const MIN_PASSWORD: usize = 8;

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> Result<String, String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| format!("no OS randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// SHA-256 of a session token, as stored.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An argon2id PHC string (the crate's defaults: 19 MiB, 2 passes, one lane).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no OS randomness: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches a stored hash; a malformed hash matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash no password matches, checked when the user does not exist so that an unknown name
/// takes as long as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_hex(16).unwrap_or_default()).unwrap_or_default())
}

/// Checks a new password; the message is for the person typing it.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(format!(
            "the password must have at least {MIN_PASSWORD} characters"
        ));
    }
    if password.len() > 1024 {
        return Err("the password is longer than 1024 bytes".into());
    }
    Ok(())
}

/// Checks a user name: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a user name: use 1 to 64 letters, digits, `.`, `_` or `-`"
        ))
    }
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Failures allowed before a key is locked.
const FREE_FAILURES: u32 = 5;
/// The first lock; each further failure doubles it, up to [`MAX_LOCK`].
const FIRST_LOCK: Duration = Duration::from_secs(30);
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Failures are forgotten after this long without another.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Keys remembered at most (bounded memory against a flood of made-up names).
const MAX_KEYS: usize = 10_000;

struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Failed logins per key (`user:NAME`, `addr:IP`). After five failures a key is locked for
/// 30 s, doubling with each further failure up to 15 minutes; a success clears the user's key.
#[derive(Default)]
pub struct Throttle {
    keys: Mutex<HashMap<String, Failures>>,
}

impl Throttle {
    /// How long the first locked key of `keys` stays locked.
    pub fn locked(&self, keys: &[String]) -> Option<Duration> {
        let now = Instant::now();
        let map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter_map(|k| map.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    pub fn fail(&self, keys: &[String]) {
        let now = Instant::now();
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        for key in keys {
            let f = map.entry(key.clone()).or_insert(Failures {
                count: 0,
                last: now,
                locked_until: None,
            });
            if now.duration_since(f.last) >= FORGET_AFTER {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
            if f.count >= FREE_FAILURES {
                let doublings = (f.count - FREE_FAILURES).min(10);
                let lock = (FIRST_LOCK * 2u32.pow(doublings)).min(MAX_LOCK);
                f.locked_until = Some(now + lock);
            }
        }
    }

    pub fn succeed(&self, key: &str) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// A cookie's value from a `Cookie:` header.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure when served over TLS.
/// `max_age` 0 removes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("clave-segura").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("clave-segura", &h));
        assert!(!verify_password("clave-segurA", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(!verify_password("", dummy_hash()));
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_user_name("ana.perez").is_ok());
        assert!(check_user_name("ana perez").is_err());
        assert!(check_user_name("").is_err());
        assert!(check_new_password("corta").is_err());
        assert!(check_new_password("bastante larga").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_throttle_locks_after_five_failures_and_doubles() {
        let t = Throttle::default();
        let keys = vec!["user:ana".to_string(), "addr:127.0.0.1".to_string()];
        for _ in 0..4 {
            t.fail(&keys);
            assert_eq!(t.locked(&keys), None);
        }
        t.fail(&keys);
        assert_eq!(t.locked(&keys), Some(FIRST_LOCK));
        assert_eq!(t.locked(&["user:otra".to_string()]), None);
        tokio::time::advance(FIRST_LOCK).await;
        assert_eq!(t.locked(&keys), None);
        t.fail(&keys);
        assert_eq!(t.locked(&keys), Some(FIRST_LOCK * 2));
        t.succeed("user:ana");
        assert_eq!(t.locked(&keys[..1]), None);
        assert_eq!(t.locked(&keys[1..]), Some(FIRST_LOCK * 2));
    }

    #[test]
    fn cookies_carry_their_flags() {
        let c = set_cookie(SESSION_COOKIE, "abc", None, true);
        assert_eq!(
            c,
            "pasarela_session=abc; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        let mut h = axum::http::HeaderMap::new();
        h.insert("cookie", "a=1; pasarela_session=xyz".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}

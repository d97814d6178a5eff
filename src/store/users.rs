//! Users of the operators' pages and their sessions. Passwords arrive here already hashed
//! (argon2id, in `web::auth`); session cookies arrive as their SHA-256, never in clear.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// What a user may do: operators send, reply and handle tickets; admins also change rules,
/// users and settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// argon2id PHC string.
    pub password: String,
    /// `es` or `en`.
    pub lang: String,
    pub created_at: i64,
}

/// A live session with its user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf: String,
    pub last_seen: i64,
}

const USER_COLUMNS: &str = "u.id, u.name, u.role, u.password, u.lang, u.created_at";

fn user_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = row.get(2)?;
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        role: Role::parse(&role).unwrap_or(Role::Operator),
        password: row.get(3)?,
        lang: row.get(4)?,
        created_at: row.get(5)?,
    })
}

/// Adds a user; a taken name is a [`StoreError::Conflict`].
pub fn insert_user(
    conn: &Connection,
    name: &str,
    role: Role,
    password_hash: &str,
    now: i64,
) -> Result<i64, StoreError> {
    if user_by_name(conn, name)?.is_some() {
        return Err(StoreError::Conflict(format!(
            "user `{name}` already exists"
        )));
    }
    conn.execute(
        "INSERT INTO users (name, role, password, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![name, role.as_str(), password_hash, now],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Changes a password and ends the user's sessions; `false` when there is no such user.
pub fn set_password(
    conn: &Connection,
    name: &str,
    password_hash: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let Some(user) = user_by_name(conn, name)? else {
        return Ok(false);
    };
    conn.execute(
        "UPDATE users SET password = ?1, updated_at = ?2 WHERE id = ?3",
        params![password_hash, now, user.id],
    )?;
    conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user.id])?;
    Ok(true)
}

/// Removes a user and their sessions; `false` when there is no such user. Refused with a
/// [`StoreError::Conflict`] when it is the last admin (nobody could manage users after).
pub fn delete_user(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    let Some(user) = user_by_name(conn, name)? else {
        return Ok(false);
    };
    if user.role == Role::Admin {
        let admins: u64 =
            conn.query_row("SELECT COUNT(*) FROM users WHERE role = 'admin'", [], |r| {
                r.get(0)
            })?;
        if admins <= 1 {
            return Err(StoreError::Conflict(format!(
                "`{name}` is the only admin: add another admin first"
            )));
        }
    }
    conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user.id])?;
    conn.execute("DELETE FROM users WHERE id = ?1", [user.id])?;
    Ok(true)
}

pub fn set_lang(conn: &Connection, user_id: i64, lang: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE users SET lang = ?1 WHERE id = ?2",
        params![lang, user_id],
    )?;
    Ok(())
}

pub fn user_by_name(conn: &Connection, name: &str) -> Result<Option<User>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.name = ?1"
        ))?
        .query_row([name], user_row)
        .optional()?)
}

pub fn list_users(conn: &Connection) -> Result<Vec<User>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users u ORDER BY u.name"
    ))?;
    let rows = stmt.query_map([], user_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn count_users(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?)
}

pub fn insert_session(
    conn: &Connection,
    token_hash: &str,
    user_id: i64,
    csrf: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, csrf, created_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![token_hash, user_id, csrf, now],
    )?;
    Ok(())
}

/// The session with this cookie hash if it was seen after `idle_since`.
pub fn session(
    conn: &Connection,
    token_hash: &str,
    idle_since: i64,
) -> Result<Option<Session>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS}, s.csrf, s.last_seen FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = ?1 AND s.last_seen > ?2"
        ))?
        .query_row(params![token_hash, idle_since], |row| {
            Ok(Session {
                user: user_row(row)?,
                csrf: row.get(6)?,
                last_seen: row.get(7)?,
            })
        })
        .optional()?)
}

pub fn touch_session(conn: &Connection, token_hash: &str, now: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE sessions SET last_seen = ?2 WHERE token_hash = ?1",
        params![token_hash, now],
    )?;
    Ok(())
}

pub fn delete_session(conn: &Connection, token_hash: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
    Ok(())
}

/// Removes sessions idle since before `idle_since`; returns how many.
pub fn purge_sessions(conn: &Connection, idle_since: i64) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM sessions WHERE last_seen <= ?1", [idle_since])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        for m in super::super::schema::MIGRATIONS {
            conn.execute_batch(m).unwrap();
        }
        (dir, conn)
    }

    #[test]
    fn sessions_expire_when_idle_and_end_with_a_new_password() {
        let (_d, c) = db();
        let id = insert_user(&c, "ana", Role::Operator, "h1", 1000).unwrap();
        assert!(matches!(
            insert_user(&c, "ana", Role::Admin, "h2", 1000),
            Err(StoreError::Conflict(_))
        ));
        insert_session(&c, "s1", id, "csrf1", 5000).unwrap();
        let s = session(&c, "s1", 4000).unwrap().unwrap();
        assert_eq!((s.user.name.as_str(), s.csrf.as_str()), ("ana", "csrf1"));
        assert!(session(&c, "s1", 5000).unwrap().is_none(), "idle too long");
        touch_session(&c, "s1", 9000).unwrap();
        assert!(session(&c, "s1", 6000).unwrap().is_some());
        assert!(set_password(&c, "ana", "h3", 9500).unwrap());
        assert!(session(&c, "s1", 0).unwrap().is_none());
        assert!(!set_password(&c, "nadie", "h3", 9500).unwrap());
        assert_eq!(list_users(&c).unwrap()[0].password, "h3");
    }
}

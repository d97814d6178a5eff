//! `pasarela user add|passwd|list`: the pages' users, written straight into the database of
//! the state directory (the daemon may be running: SQLite's WAL lets both in).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};

use super::auth;
use crate::store::users::{self, Role};
use crate::store::{Store, now_ms};

/// Adds a user; fails naming the problem (bad name, short password, name taken).
pub async fn add(store: &Store, name: &str, role: Role, password: &str) -> anyhow::Result<()> {
    auth::check_user_name(name).map_err(anyhow::Error::msg)?;
    auth::check_new_password(password).map_err(anyhow::Error::msg)?;
    let hash = hash(password).await?;
    let name = name.to_string();
    store
        .write(move |c| users::insert_user(c, &name, role, &hash, now_ms()))
        .await?;
    Ok(())
}

/// Sets a user's password and ends their sessions.
pub async fn passwd(store: &Store, name: &str, password: &str) -> anyhow::Result<()> {
    auth::check_new_password(password).map_err(anyhow::Error::msg)?;
    let hash = hash(password).await?;
    let n = name.to_string();
    let found = store
        .write(move |c| users::set_password(c, &n, &hash, now_ms()))
        .await?;
    if !found {
        bail!("there is no user `{name}` (see `pasarela user list`)");
    }
    Ok(())
}

/// Removes a user and ends their sessions; fails naming the problem (no such user, the last
/// admin).
pub async fn remove(store: &Store, name: &str) -> anyhow::Result<()> {
    let n = name.to_string();
    let found = store.write(move |c| users::delete_user(c, &n)).await?;
    if !found {
        bail!("there is no user `{name}` (see `pasarela user list`)");
    }
    Ok(())
}

/// One line per user: name, role, language.
pub async fn list(store: &Store) -> anyhow::Result<Vec<String>> {
    let all = store.read(users::list_users).await?;
    Ok(all
        .into_iter()
        .map(|u| format!("{}\t{}\t{}", u.name, u.role, u.lang))
        .collect())
}

/// Creates `name` as an admin with `password`, or gives an existing `name` that password
/// (its sessions survive when the password is unchanged); `Ok(false)` when the user existed.
pub async fn ensure_admin(store: &Store, name: &str, password: &str) -> anyhow::Result<bool> {
    let n = name.to_string();
    if let Some(user) = store.read(move |c| users::user_by_name(c, &n)).await? {
        let (p, hash) = (password.to_string(), user.password);
        let same = tokio::task::spawn_blocking(move || auth::verify_password(&p, &hash))
            .await
            .unwrap_or(false);
        if !same {
            passwd(store, name, password).await?;
        }
        return Ok(false);
    }
    add(store, name, Role::Admin, password).await?;
    Ok(true)
}

async fn hash(password: &str) -> anyhow::Result<String> {
    let p = password.to_string();
    tokio::task::spawn_blocking(move || auth::hash_password(&p))
        .await
        .context("hashing the password")?
        .map_err(anyhow::Error::msg)
}

/// Reads a new password: typed twice without echo on a terminal, else the first line of
/// standard input.
pub fn read_password(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let p = line.trim_end_matches(['\r', '\n']).to_string();
        if p.is_empty() {
            bail!("no password on standard input");
        }
        return Ok(p);
    }
    let first = prompt_hidden(prompt)?;
    let again = prompt_hidden("Repeat it: ")?;
    if first != again {
        bail!("the two passwords differ");
    }
    Ok(first)
}

/// Prompts on the terminal with echo off.
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    let mut err = std::io::stderr();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed termios the call fills in.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) != 0 {
            bail!("cannot read the terminal settings");
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        t.c_lflag |= libc::ECHONL;
        libc::tcsetattr(0, libc::TCSANOW, &t);
        saved
    };
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    // SAFETY: restores the settings read above.
    unsafe {
        libc::tcsetattr(0, libc::TCSANOW, &saved);
    }
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn users_are_added_listed_and_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        add(&store, "ana", Role::Operator, "una clave larga")
            .await
            .unwrap();
        let e = add(&store, "ana", Role::Admin, "otra clave larga")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        let e = add(&store, "beto", Role::Admin, "corta").await.unwrap_err();
        assert!(e.to_string().contains("at least 8"), "{e}");
        assert!(
            ensure_admin(&store, "admin", "clave del admin")
                .await
                .unwrap()
        );
        assert!(
            !ensure_admin(&store, "admin", "clave nueva del admin")
                .await
                .unwrap()
        );
        assert_eq!(
            list(&store).await.unwrap(),
            vec!["admin\tadmin\tes", "ana\toperator\tes"]
        );
        passwd(&store, "ana", "clave cambiada").await.unwrap();
        let e = passwd(&store, "nadie", "clave cambiada").await.unwrap_err();
        assert!(e.to_string().contains("no user `nadie`"), "{e}");
        let ana = store
            .read(|c| users::user_by_name(c, "ana"))
            .await
            .unwrap()
            .unwrap();
        assert!(auth::verify_password("clave cambiada", &ana.password));
        let e = remove(&store, "admin").await.unwrap_err();
        assert!(e.to_string().contains("only admin"), "{e}");
        remove(&store, "ana").await.unwrap();
        let e = remove(&store, "ana").await.unwrap_err();
        assert!(e.to_string().contains("no user `ana`"), "{e}");
        assert_eq!(list(&store).await.unwrap(), vec!["admin\tadmin\tes"]);
        store.close().await;
    }
}

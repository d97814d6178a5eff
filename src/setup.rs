//! Loading a config file with every check: the config's own ([`Loaded::validate`]: addresses,
//! ranges, route names, routing), each transport kind's ([`Kind::check`] for every kind in
//! [`crate::registry`]), the keyword rules' (templates, keywords, windows, groups) and the
//! directory's. `config` aggregates the tables and imports no feature; this module is where
//! the features' checks meet.
//!
//! [`Kind::check`]: crate::transport::kind::Kind::check

use std::path::Path;

use crate::config::{Config, ConfigError, ConfigErrors, Loaded};

/// Parses and checks `text`. Errors name key and line, in file order; every problem found is
/// listed, not just the first.
pub fn from_toml(text: &str) -> Result<Loaded, ConfigErrors> {
    let loaded = Config::parse(text)?;
    check(&loaded)?;
    Ok(loaded)
}

/// Reads, parses and checks the file at `path`.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let loaded = Config::read(path)?;
    check(&loaded)?;
    Ok(loaded)
}

/// Every check of a parsed config: [`Loaded::validate`] and each feature's.
pub fn check(loaded: &Loaded) -> Result<(), ConfigErrors> {
    let c = &loaded.config;
    let mut errors = loaded.validate().err().map(|e| e.0).unwrap_or_default();
    let mut pairs = Vec::new();
    for kind in crate::registry::KINDS {
        pairs.extend(kind.check(c));
    }
    pairs.extend(crate::rules::check_config(c));
    pairs.extend(crate::events::check_config(c, &Default::default()));
    pairs.extend(c.directory.check());
    errors.extend(
        pairs
            .into_iter()
            .map(|(key, message)| loaded.err(&key, message)),
    );
    if errors.is_empty() {
        return Ok(());
    }
    errors.sort_by_key(|e: &ConfigError| e.line.unwrap_or(usize::MAX));
    Err(ConfigErrors(errors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::*;
    use std::path::PathBuf;

    #[test]
    fn empty_file_is_all_defaults() {
        let loaded = from_toml("").unwrap();
        assert_eq!(loaded.config.admin.listen, "127.0.0.1:8080");
        assert_eq!(loaded.config.company.country, "AR");
        assert_eq!(
            loaded.config.daemon.state_dir,
            PathBuf::from("/var/lib/pasarela")
        );
    }

    #[test]
    fn bad_listen_names_key_and_line() {
        let text = "[daemon]\nlog_level = \"info\"\n\n[admin]\nlisten = \"8080\"\n";
        let err = from_toml(text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "admin.listen: `8080` is not an address like 127.0.0.1:8080 (line 5)"
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = "[admin]\nlisten = \"127.0.0.1:9\"\nlisen = \"x\"\n";
        let err = from_toml(text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("admin.lisen"), "{msg}");
        assert!(msg.contains("unknown field"), "{msg}");
        assert!(msg.contains("(line 3)"), "{msg}");
    }

    #[test]
    fn wrong_type_names_line() {
        let err = from_toml("[daemon]\nshutdown_grace_secs = \"ten\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("daemon.shutdown_grace_secs:"), "{msg}");
        assert!(msg.contains("(line 2)"), "{msg}");
    }

    #[test]
    fn malformed_toml_is_an_error_with_line() {
        let err = from_toml("[admin\nlisten=1").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let loaded = from_toml("[admin]\ntoken = \"s3cr3t-s3cr3t-s3cr3t\"\n").unwrap();
        let dbg = format!("{:?}", loaded.config);
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(dbg.contains("***"));
    }

    #[test]
    fn short_token_and_bad_timezone_and_country_all_reported() {
        let text = "[admin]\ntoken = \"short\"\n[company]\ntimezone = \"Mars/Olympus\"\ncountry = \"XX\"\n";
        let err = from_toml(text).unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert_eq!(err.0[0].key, "admin.token");
        assert_eq!(err.0[1].line, Some(4));
        assert_eq!(err.0[2].key, "company.country");
    }

    #[test]
    fn relative_state_dir_rejected() {
        let err = from_toml("[daemon]\nstate_dir = \"data\"\n").unwrap_err();
        assert!(err.to_string().starts_with("daemon.state_dir:"), "{err}");
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn state_dir_not_writable_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plainfile");
        std::fs::write(&file, b"").unwrap();
        let text = format!("[daemon]\nstate_dir = \"{}\"\n", file.display());
        let loaded = from_toml(&text).unwrap();
        let err = loaded.check_environment().unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn token_file_missing_and_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let text = format!(
            "[daemon]\nstate_dir = \"{}\"\n[admin]\ntoken_file = \"{}\"\n",
            dir.path().display(),
            missing.display()
        );
        let loaded = from_toml(&text).unwrap();
        let err = loaded.check_environment().unwrap_err();
        assert!(err.to_string().contains("admin.token_file"), "{err}");

        use std::os::unix::fs::PermissionsExt;
        let tok = dir.path().join("token");
        std::fs::write(&tok, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "[daemon]\nstate_dir = \"{}\"\n[admin]\ntoken_file = \"{}\"\n",
            dir.path().display(),
            tok.display()
        );
        let loaded = from_toml(&text).unwrap();
        let warnings = loaded.check_environment().unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("chmod 640"));
        assert_eq!(
            loaded.admin_token().unwrap().unwrap().expose(),
            "0123456789abcdef0123"
        );
    }

    #[test]
    fn example_phone_routes_parse() {
        let text = include_str!("../config/pasarela.toml");
        let (_, examples) = text.split_once("# ---- Routes").unwrap();
        // Lines like `#name = "phone1"` are settings; `# text` lines are prose.
        let enabled: String = text
            .lines()
            .take_while(|l| !l.starts_with("# ---- Routes"))
            .chain(examples.lines().map(|l| match l.strip_prefix('#') {
                Some(rest) if !rest.starts_with(' ') && !rest.is_empty() => rest,
                _ => "",
            }))
            .collect::<Vec<_>>()
            .join("\n");
        let loaded = from_toml(&enabled).unwrap_or_else(|e| panic!("{e}"));
        let c = &loaded.config;
        assert_eq!(c.androids[0].name, "phone1");
        assert_eq!(c.androids[0].rate_limit.unwrap().to_string(), "120/hour");
        assert_eq!(c.http_sms[0].params["message"], "{message}");
        assert_eq!(c.email[0].areas, ["facturas", "todo"]);
        assert_eq!(c.email[0].rate_limit.unwrap().to_string(), "300/day");
        assert_eq!(c.routing.policy, RoutePolicy::Failover);
        assert_eq!(c.route_tier("modem1"), 0);
        assert_eq!(c.route_tier("phone1"), 1);
        assert_eq!(c.route_rate_limit("modem1"), None);
        assert!(!format!("{c:?}").contains("copy-it-from-the-app"));
    }

    #[test]
    fn route_mistakes_name_key_and_line() {
        let text = "[[android]]\nname = \"phone1\"\nurl = \"ftp://10.0.0.2\"\npassword = \"x\"\n\
                    webhook_url = \"http://10.0.0.1:8090/hooks\"\nrate_limit = \"5/fortnight\"\n";
        let err = from_toml(text).unwrap_err().to_string();
        assert!(
            err.contains("android.rate_limit:") && err.contains("(line 6)"),
            "{err}"
        );
        let text = "[[android]]\nname = \"phone1\"\nurl = \"ftp://10.0.0.2\"\npassword = \"x\"\n\
                    webhook_url = \"http://10.0.0.1:8090/hooks\"\n\
                    [[http_sms]]\nname = \"phone1\"\nurl = \"http://h/{mesage}\"\n\
                    [routing]\nprimary = [\"nope\"]\n";
        let err = from_toml(text).unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        for key in [
            "android.url",
            "android.webhook_url",
            "android.signing_key",
            "http_sms.name",
            "http_sms.params",
            "routing.primary",
        ] {
            assert!(keys.contains(&key), "{key} missing from {err}");
        }
        assert!(err.0.iter().all(|e| e.line.is_some()), "{err}");
    }

    #[test]
    fn rate_limits_parse() {
        assert_eq!(RateLimit::parse("120/hour").unwrap().per.as_secs(), 3600);
        assert_eq!(RateLimit::parse("10 / 30s").unwrap().to_string(), "10/30s");
        assert!(RateLimit::parse("0/hour").is_err());
        assert!(RateLimit::parse("10").is_err());
        assert!(RateLimit::parse("ten/hour").is_err());
    }

    #[test]
    fn example_config_parses_with_no_route_on() {
        let text = include_str!("../config/pasarela.toml");
        let loaded = from_toml(text).unwrap();
        assert_eq!(loaded.config.company.country, "AR");
        let c = &loaded.config;
        assert!(
            c.modems.is_empty() && c.androids.is_empty() && c.http_sms.is_empty(),
            "an Android-only or provider-only install must not start with a route that is always down"
        );
        assert!(c.email.is_empty() && c.whatsapp.is_none());
        let packaged = from_toml(include_str!("../packaging/pasarela.toml")).unwrap();
        assert!(packaged.config.modems.is_empty());
    }
}

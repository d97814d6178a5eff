//! Word-level, case- and accent-insensitive keyword matching.
//!
//! Customers write "Hola, ¿cuál es mi SALDO?" or "saldo!!" or "Sáldo": all match the keyword
//! `saldo`. Matching is on whole words, so "cuentan" does not match `cuenta`; a keyword of several
//! words (`sin internet`) matches those words in a row.

/// Lower-cases and strips the accents Spanish and Portuguese texts use (`Á`→`a`, `ñ`→`n`, `ü`→`u`).
pub fn fold_char(c: char) -> char {
    let lower = c.to_lowercase().next().unwrap_or(c);
    match lower {
        'á' | 'à' | 'ä' | 'â' | 'ã' | 'å' => 'a',
        'é' | 'è' | 'ë' | 'ê' => 'e',
        'í' | 'ì' | 'ï' | 'î' => 'i',
        'ó' | 'ò' | 'ö' | 'ô' | 'õ' => 'o',
        'ú' | 'ù' | 'ü' | 'û' => 'u',
        'ñ' => 'n',
        'ç' => 'c',
        other => other,
    }
}

/// The words of a text, folded: letters and digits only, everything else separates.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            current.push(fold_char(c));
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A keyword list, prepared for matching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keywords {
    /// Each keyword as its folded words.
    phrases: Vec<Vec<String>>,
}

impl Keywords {
    pub fn new<S: AsRef<str>>(keywords: &[S]) -> Keywords {
        Keywords {
            phrases: keywords
                .iter()
                .map(|k| words(k.as_ref()))
                .filter(|w| !w.is_empty())
                .collect(),
        }
    }

    /// True when one keyword appears in `text_words` as whole consecutive words.
    pub fn found_in(&self, text_words: &[String]) -> bool {
        self.phrases.iter().any(|phrase| {
            text_words
                .windows(phrase.len())
                .any(|window| window == phrase.as_slice())
        })
    }

    /// True when the whole text is one keyword (punctuation and spacing aside).
    pub fn is_whole(&self, text_words: &[String]) -> bool {
        self.phrases.iter().any(|phrase| phrase == text_words)
    }
}

/// A keyword list is valid when every entry has at least one word.
pub fn check_keywords(keywords: &[String]) -> Result<(), String> {
    if keywords.is_empty() {
        return Err("needs at least one keyword".into());
    }
    for k in keywords {
        if words(k).is_empty() {
            return Err(format!("`{k}` has no letters or digits to match"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(keywords: &[&str], text: &str) -> bool {
        Keywords::new(keywords).found_in(&words(text))
    }

    #[test]
    fn matches_words_ignoring_case_accents_and_punctuation() {
        assert!(m(&["saldo"], "Hola, ¿cuál es mi SALDO?"));
        assert!(m(&["saldo"], "sáldo!!"));
        assert!(m(&["cuenta"], "mi cuenta"));
        assert!(!m(&["cuenta"], "cuentan que no anda"));
        assert!(!m(&["saldo"], "saldos"));
        assert!(m(&["sin internet"], "estoy SIN   internet desde ayer"));
        assert!(!m(&["sin internet"], "sin luz, internet anda"));
        assert!(m(&["reclamo"], "RECLAMO: señal baja"));
        assert!(m(&["baño"], "el BANO"));
        assert!(!m(&[], "saldo"));
    }

    #[test]
    fn whole_message_keywords() {
        let k = Keywords::new(&["baja", "stop"]);
        assert!(k.is_whole(&words(" Baja. ")));
        assert!(k.is_whole(&words("STOP")));
        assert!(!k.is_whole(&words("quiero dar de baja el servicio")));
    }

    #[test]
    fn keyword_lists_are_checked() {
        assert!(check_keywords(&[]).is_err());
        assert!(check_keywords(&["¿?".into()]).is_err());
        assert!(check_keywords(&["saldo".into(), "mi deuda".into()]).is_ok());
    }
}

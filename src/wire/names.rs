//! Names in a room: what makes one valid, how a taken one is given a
//! suffix, and how two names are compared (without regard to case, so that
//! `Bob` cannot pass for `bob`).

/// The most characters a name may have.
pub const MAX_NAME_CHARS: usize = 32;

/// Checks `name` against the rules: 1 to 32 characters, each printable and
/// none a space, a colon or a character that changes how text around it is
/// shown. The room's wire forms rely on the absence of spaces and colons
/// (`NAME: TEXT`, `* NAME TEXT`).
pub fn check(name: &str) -> Result<(), String> {
    let count = name.chars().count();
    if count == 0 {
        return Err("a name cannot be empty".to_string());
    }
    if count > MAX_NAME_CHARS {
        return Err(format!(
            "a name has at most {MAX_NAME_CHARS} characters ({count} given)"
        ));
    }
    // `-- ` starts a notice and `* ` an action: a name that begins so could
    // make a message read like one of them.
    if name.starts_with('-') || name.starts_with('*') {
        return Err("a name cannot begin with - or *".to_string());
    }
    if let Some(bad) = name.chars().find(|&c| !allowed(c)) {
        let what = match bad {
            ':' => "a colon".to_string(),
            c if c.is_whitespace() => "a space".to_string(),
            c => format!("the character U+{:04X}", c as u32),
        };
        return Err(format!(
            "a name is one word of printable characters, without {what}"
        ));
    }
    Ok(())
}

fn allowed(c: char) -> bool {
    !(c.is_control()
        || c.is_whitespace()
        || c == ':'
        // Zero-width and bidirectional format characters, which could make
        // two different names look alike or reorder a line.
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}'))
}

/// The form two names are compared in: the same for `Bob` and `bob`.
pub fn key(name: &str) -> String {
    name.to_lowercase()
}

/// `wanted` if it is free, otherwise `wanted-2`, `wanted-3`… (cut so that
/// the result still has at most 32 characters), the first that is free.
pub fn free_form(wanted: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(&key(wanted)) {
        return wanted.to_string();
    }
    (2u64..)
        .map(|n| {
            let suffix = format!("-{n}");
            let keep = MAX_NAME_CHARS - suffix.len();
            let stem: String = wanted.chars().take(keep).collect();
            format!("{stem}{suffix}")
        })
        .find(|candidate| !taken(&key(candidate)))
        .expect("some suffix is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_printable_word_of_at_most_32_characters() {
        for good in [
            "alice",
            "Bob_2",
            "李雷",
            "émile",
            "🦀",
            "a",
            &"x".repeat(32),
        ] {
            assert_eq!(check(good), Ok(()), "{good:?}");
        }
        for bad in [
            "",
            "two words",
            "tab\there",
            "bob:",
            "new\nline",
            "esc\x1b",
            "rtl\u{202e}x",
            "zero\u{200b}width",
            "--",
            "-x",
            "*star",
            &"x".repeat(33),
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check("a b").unwrap_err(),
            "a name is one word of printable characters, without a space"
        );
        assert_eq!(check(&"é".repeat(32)), Ok(()), "characters, not bytes");
    }

    #[test]
    fn a_taken_name_gets_the_first_free_suffix_within_32_characters() {
        let taken = ["bob", "bob-2"];
        let is_taken = |k: &str| taken.contains(&k);
        assert_eq!(free_form("carol", is_taken), "carol");
        assert_eq!(free_form("Bob", is_taken), "Bob-3");
        let long = "y".repeat(32);
        let long_taken = |k: &str| k == long;
        let got = free_form(&long, long_taken);
        assert_eq!(got, format!("{}-2", "y".repeat(30)));
        assert_eq!(check(&got), Ok(()));
    }

    #[test]
    fn names_compare_without_case() {
        assert_eq!(key("Bob"), key("bob"));
        assert_ne!(key("bob"), key("rob"));
    }
}

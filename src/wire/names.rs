//! Names in a room: what makes one valid, how a taken one is given a
//! suffix, and how two names are compared, so that no name can pass for
//! another by its look.
//!
//! The Unicode data is `unicode-security`'s (UTS #39, Unicode Security
//! Mechanisms), as ngircd and ergo refuse confusing nicknames: every
//! character must be one the General Security Profile allows in
//! identifiers (letters, digits, combining marks, a few punctuation marks;
//! no invisible, format, bidirectional, blank or symbol characters, no
//! emoji), the scripts must not be mixed beyond what UTS #39 calls highly
//! restrictive (`аlice` with a Cyrillic `а` is refused; Japanese may mix
//! Han and kana), and two names whose confusable skeletons are equal,
//! case aside, are the same name (`bob` and `ƅob`, `I1` and `l1`).

use unicode_security::{GeneralSecurityProfile, RestrictionLevel, RestrictionLevelDetection};

/// The most characters a name may have.
pub const MAX_NAME_CHARS: usize = 32;

/// Checks `name` against the rules: 1 to 32 characters that UTS #39
/// allows in identifiers, none a colon, from one script (see the module's
/// text), with a letter or a digit. The room's wire forms rely on the
/// absence of spaces and colons (`NAME: TEXT`, `* NAME TEXT`).
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
            c => format!("U+{:04X}", c as u32),
        };
        return Err(format!(
            "a name is one word of letters, digits and a few marks (- _ . '), without {what}"
        ));
    }
    if !name.chars().any(char::is_alphanumeric) {
        return Err("a name needs a letter or a digit".to_string());
    }
    if !name.check_restriction_level(RestrictionLevel::HighlyRestrictive) {
        return Err(
            "a name cannot mix scripts (say Latin and Cyrillic letters): it could pass for another"
                .to_string(),
        );
    }
    Ok(())
}

fn allowed(c: char) -> bool {
    c != ':'
        && c.identifier_allowed()
        // Joiners, which UTS #39 lets through for some scripts' spelling,
        // are invisible: two names that differ by one look the same.
        && !matches!(c, '\u{200c}' | '\u{200d}')
}

/// What two names are compared by: two names are one if their
/// confusable skeletons are equal, as written (`I1` and `l1`: a capital I
/// looks like an l) or in lower case (`Bob` and `bob`; `paypal` and
/// `pаypal` with a Cyrillic `а`, were that one let in). Made once per
/// name, so that checking a newcomer's name against a full room costs a
/// comparison per member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    written: String,
    lower: String,
}

impl Key {
    pub fn of(name: &str) -> Self {
        Self {
            written: unicode_security::skeleton(name).collect(),
            lower: unicode_security::skeleton(&name.to_lowercase()).collect(),
        }
    }

    /// Whether the two names would pass for each other.
    pub fn same(&self, other: &Key) -> bool {
        self.written == other.written || self.lower == other.lower
    }
}

/// `wanted` if it is free, otherwise `wanted-2`, `wanted-3`… (cut so that
/// the result still has at most 32 characters), the first that is free.
pub fn free_form(wanted: &str, taken: impl Fn(&Key) -> bool) -> String {
    if !taken(&Key::of(wanted)) {
        return wanted.to_string();
    }
    (2u64..)
        .map(|n| {
            let suffix = format!("-{n}");
            let keep = MAX_NAME_CHARS - suffix.len();
            let stem: String = wanted.chars().take(keep).collect();
            format!("{stem}{suffix}")
        })
        .find(|candidate| !taken(&Key::of(candidate)))
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
            "e\u{301}mile",
            "алиса",
            "山田たろう",
            "o'neil",
            "a.b",
            "a",
            "7",
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
            "🦀",
            "_",
            "...",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check("a b").unwrap_err(),
            "a name is one word of letters, digits and a few marks (- _ . '), without a space"
        );
        assert_eq!(check(&"é".repeat(32)), Ok(()), "characters, not bytes");
    }

    #[test]
    fn a_taken_name_gets_the_first_free_suffix_within_32_characters() {
        let taken = [Key::of("bob"), Key::of("bob-2")];
        let is_taken = |k: &Key| taken.iter().any(|t| t.same(k));
        assert_eq!(free_form("carol", is_taken), "carol");
        assert_eq!(free_form("Bob", is_taken), "Bob-3");
        let long = "y".repeat(32);
        let long_taken = |k: &Key| k.same(&Key::of(&long));
        let got = free_form(&long, long_taken);
        assert_eq!(got, format!("{}-2", "y".repeat(30)));
        assert_eq!(check(&got), Ok(()));
    }

    #[test]
    fn names_compare_without_case() {
        assert!(Key::of("Bob").same(&Key::of("bob")));
        assert!(!Key::of("bob").same(&Key::of("rob")));
    }

    /// The look-alikes found against the room: mixed scripts, invisible
    /// and blank characters, and a variation selector after the
    /// operator's name, all refused.
    #[test]
    fn names_that_could_pass_for_another_are_refused() {
        for bad in [
            "\u{430}lice",             // Cyrillic а, then Latin
            "\u{430}li\u{441}\u{435}", // Cyrillic а, с, е around Latin l, i
            "server\u{fe0f}",
            "ali\u{ad}ce",
            "ali\u{34f}ce",
            "ali\u{e0061}ce",
            "ali\u{61c}ce",
            "ali\u{180e}ce",
            "ali\u{206a}ce",
            "ali\u{200d}ce",
            "\u{3164}",
            "\u{ffa0}",
            "\u{1160}",
            "\u{2800}",
            "ali\u{2800}ce",
            "\u{3000}",
        ] {
            assert!(check(bad).is_err(), "{bad:?} let in");
        }
    }

    /// Names that pass the check one by one but look alike are one name.
    #[test]
    fn look_alike_names_share_a_key() {
        for (a, b) in [
            ("alice", "ALICE"),
            ("l1", "I1"),
            ("rn", "m"),
            ("alice", "\u{430}\u{4cf}\u{456}\u{441}\u{435}"), // all Cyrillic look-alikes
            ("paypal", "p\u{430}yp\u{430}l"),
            ("o0", "oO"),
        ] {
            assert!(Key::of(a).same(&Key::of(b)), "{a:?} and {b:?}");
            assert!(Key::of(b).same(&Key::of(a)), "{b:?} and {a:?}");
        }
        assert!(!Key::of("alice").same(&Key::of("alicia")));
        assert!(!Key::of("li").same(&Key::of("ll")));
    }
}

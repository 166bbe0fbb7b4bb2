//! Where a challenge code goes: an E.164 phone number or an e-mail address.

use std::fmt;

/// A phone number in E.164 form: `+`, then 8 to 15 digits, the first not 0.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct E164Phone(String);

impl E164Phone {
    /// Normalises a number as people write it: spaces, dashes, dots and parentheses are
    /// dropped, a leading `00` means `+`, and a number without `+` is taken as international
    /// digits (country code first).
    pub fn parse(input: &str) -> Option<Self> {
        let trimmed = input.trim();
        let rest = trimmed
            .strip_prefix('+')
            .or_else(|| trimmed.strip_prefix("00"))
            .unwrap_or(trimmed);
        let mut digits = String::with_capacity(16);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return None,
            }
        }
        let valid = (8..=15).contains(&digits.len()) && !digits.starts_with('0');
        valid.then(|| Self(format!("+{digits}")))
    }

    /// The normalised number, `+` and digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for E164Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Personal data: keep logs to the country code and the last two digits.
        let shown: String = self
            .0
            .char_indices()
            .map(|(i, c)| {
                if i < 3 || i + 2 >= self.0.len() {
                    c
                } else {
                    '•'
                }
            })
            .collect();
        write!(f, "E164Phone({shown})")
    }
}

/// An e-mail address: one `@`, non-empty local part and domain, no spaces or controls.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Accepts a plain address (no display name), lower-cased: mailboxes are matched
    /// case-insensitively, as the mail systems of practically every bank customer do.
    pub fn parse(input: &str) -> Option<Self> {
        let s = input.trim();
        let (local, domain) = s.rsplit_once('@')?;
        let ok = !local.is_empty()
            && local.len() <= 64
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && s.len() <= 254
            && !s
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"()[]\\".contains(c))
            && !local.contains('@');
        ok.then(|| Self(s.to_lowercase()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_normalised_to_e164() {
        let p = |s| E164Phone::parse(s).map(|p| p.as_str().to_owned());
        assert_eq!(p("+34 600 123-456").as_deref(), Some("+34600123456"));
        assert_eq!(p("0034600123456").as_deref(), Some("+34600123456"));
        assert_eq!(p("966501234567").as_deref(), Some("+966501234567"));
        assert_eq!(p("+1 (415) 555.0100").as_deref(), Some("+14155550100"));
        assert_eq!(p("+0123456789"), None, "no country code starts with 0");
        assert_eq!(p("+1234567"), None, "too short");
        assert_eq!(p("+1234567890123456"), None, "too long");
        assert_eq!(p("+34 600 abc"), None);
        assert_eq!(p(""), None);
    }

    #[test]
    fn a_phone_number_is_masked_in_debug_output() {
        let p = E164Phone::parse("+34600123456").unwrap();
        assert_eq!(format!("{p:?}"), "E164Phone(+34•••••••56)");
    }

    #[test]
    fn email_addresses_are_checked_and_lower_cased() {
        assert_eq!(
            Email::parse("Ana.Lopez@Example.COM").unwrap().as_str(),
            "ana.lopez@example.com"
        );
        for bad in [
            "",
            "a",
            "@x.com",
            "a@",
            "a@b",
            "a b@x.com",
            "a@x.com>",
            "a@@x.com",
            "a@.x.com",
        ] {
            assert!(Email::parse(bad).is_none(), "{bad}");
        }
    }
}

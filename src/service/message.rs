//! Message texts: built-in templates per language, channel templates, and rendering.

use uuid::Uuid;

use super::{Error, Services};
use crate::domain::{Otp, SecretString};

/// Languages with built-in templates.
pub const LANGUAGES: [&str; 3] = ["ar_SA", "en_US", "es_ES"];

/// Longest template a channel may define.
const MAX_TEMPLATE_LEN: usize = 480;

/// The built-in text for `lang`, with or without an application name.
fn builtin(lang: &str, with_app: bool) -> &'static str {
    match (lang, with_app) {
        ("ar_SA", false) => "رمز التحقق الخاص بك هو {otp}. صالح لمدة {minutes} دقائق.",
        ("ar_SA", true) => "رمز التحقق الخاص بك في {app} هو {otp}. صالح لمدة {minutes} دقائق.",
        ("es_ES", false) => "Su código de verificación es {otp}. Caduca en {minutes} minutos.",
        ("es_ES", true) => {
            "Su código de verificación de {app} es {otp}. Caduca en {minutes} minutos."
        }
        (_, false) => "Your verification code is {otp}. It expires in {minutes} minutes.",
        (_, true) => "Your {app} verification code is {otp}. It expires in {minutes} minutes.",
    }
}

/// The e-mail subject for `lang`.
pub(super) fn subject(lang: &str) -> &'static str {
    match lang {
        "ar_SA" => "رمز التحقق",
        "es_ES" => "Código de verificación",
        _ => "Verification code",
    }
}

/// Whether `lang` looks like a language tag (`xx_YY`).
pub(super) fn valid_lang(lang: &str) -> bool {
    let b = lang.as_bytes();
    b.len() == 5
        && b.get(2) == Some(&b'_')
        && b.iter().take(2).all(u8::is_ascii_lowercase)
        && b.iter().skip(3).all(u8::is_ascii_uppercase)
}

/// Renders a template. For voice, digits are spoken one by one.
pub(super) fn render(
    template: &str,
    otp: &Otp,
    app: Option<&str>,
    minutes: u64,
    voice: bool,
) -> SecretString {
    let code = if voice {
        otp.expose()
            .chars()
            .map(String::from)
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        otp.expose().to_owned()
    };
    let code = zeroize::Zeroizing::new(code);
    SecretString::new(
        template
            .replace("{app}", app.unwrap_or(""))
            .replace("{minutes}", &minutes.to_string())
            .replace("{otp}", &code),
    )
}

impl Services {
    /// The template text to use: the channel's `ref_id`, or the built-in one for `lang`.
    pub(super) fn template_text(
        &self,
        channel_id: Uuid,
        ref_id: Option<&str>,
        lang: &str,
        with_app: bool,
    ) -> Result<String, Error> {
        match ref_id {
            Some(r) => self
                .store
                .template(channel_id, r)?
                .map(|t| t.body)
                .ok_or(Error::InvalidRequest("template")),
            None => Ok(builtin(lang, with_app).to_owned()),
        }
    }

    /// Stores a channel template; returns its `ref_id`.
    pub fn create_template(&self, channel: &str, lang: &str, text: &str) -> Result<String, Error> {
        if !valid_lang(lang) {
            return Err(Error::InvalidRequest("lang"));
        }
        if !text.contains("{otp}") || text.chars().count() > MAX_TEMPLATE_LEN {
            return Err(Error::InvalidRequest("text"));
        }
        let row = self
            .store
            .channel_by_name(channel)?
            .ok_or(Error::NotFound(super::Missing::Channel))?;
        let random = self.hsm.random(6)?;
        let ref_id = format!("tpl_{}", hex::encode(random.expose()));
        Ok(self
            .store
            .insert_template(&ref_id, row.id, lang, text)?
            .ref_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_name_the_app_and_the_minutes() {
        let otp = Otp::parse("042917").unwrap();
        let t = builtin("en_US", true);
        assert_eq!(
            render(t, &otp, Some("Acme"), 10, false).expose(),
            "Your Acme verification code is 042917. It expires in 10 minutes."
        );
        let es = render(builtin("es_ES", false), &otp, None, 5, false);
        assert!(es.expose().contains("042917") && es.expose().contains("5 minutos"));
        assert!(
            render(builtin("ar_SA", true), &otp, Some("mPass"), 3, false)
                .expose()
                .contains("mPass")
        );
        assert_eq!(
            render("{otp}", &otp, None, 1, true).expose(),
            "0, 4, 2, 9, 1, 7",
            "voice spells the digits"
        );
    }

    #[test]
    fn language_tags_have_the_form_xx_yy() {
        assert!(LANGUAGES.iter().all(|l| valid_lang(l)));
        assert!(!valid_lang("en-US") && !valid_lang("EN_us") && !valid_lang("en"));
    }
}

//! Per-channel message templates.

use diesel::prelude::*;
use uuid::Uuid;

use super::schema::templates;
use super::{Store, StoreError};

/// A channel's template.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = templates)]
pub struct TemplateRow {
    /// Public reference (UnityVox's `ref_id`).
    pub ref_id: String,
    /// Owning channel.
    pub channel_id: Uuid,
    /// Language tag such as `en_US`.
    pub lang: String,
    /// Text with `{otp}`, `{app}`, `{minutes}`.
    pub body: String,
}

impl Store {
    /// Stores a template.
    pub fn insert_template(
        &self,
        ref_id: &str,
        channel_id: Uuid,
        lang: &str,
        body: &str,
    ) -> Result<TemplateRow, StoreError> {
        self.run("template_insert", |c| {
            Ok(diesel::insert_into(templates::table)
                .values((
                    templates::ref_id.eq(ref_id),
                    templates::channel_id.eq(channel_id),
                    templates::lang.eq(lang),
                    templates::body.eq(body),
                ))
                .returning(TemplateRow::as_returning())
                .get_result(c)?)
        })
    }

    /// The template `ref_id` of `channel_id`.
    pub fn template(
        &self,
        channel_id: Uuid,
        ref_id: &str,
    ) -> Result<Option<TemplateRow>, StoreError> {
        self.run("template_get", |c| {
            Ok(templates::table
                .filter(
                    templates::ref_id
                        .eq(ref_id)
                        .and(templates::channel_id.eq(channel_id)),
                )
                .select(TemplateRow::as_select())
                .first(c)
                .optional()?)
        })
    }
}

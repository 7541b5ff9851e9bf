//! UI dashboard templates (booster-ui's template store): written straight through, one row per
//! template id, never expired.
use crate::keys;
use crate::model::TemplateRecord;
use crate::rows::{self, RowStore};
use crate::Result;

/// A template row as stored (the id is the key).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredTemplate {
    configuration: String,
    disabled: bool,
}

pub(crate) fn put_template(
    store: &dyn RowStore,
    id: &str,
    configuration: &str,
    disabled: bool,
) -> Result<()> {
    let row = rows::encode(&StoredTemplate {
        configuration: configuration.to_string(),
        disabled,
    })?;
    store.apply(vec![(keys::template_key(id), Some(row))])
}

pub(crate) fn get_template(store: &dyn RowStore, id: &str) -> Result<Option<TemplateRecord>> {
    let key = keys::template_key(id);
    match store.get(&key)? {
        Some(bytes) => {
            let row: StoredTemplate = rows::decode(&key, &bytes)?;
            Ok(Some(TemplateRecord {
                id: id.to_string(),
                configuration: row.configuration,
                disabled: row.disabled,
            }))
        }
        None => Ok(None),
    }
}

pub(crate) fn list_templates(store: &dyn RowStore) -> Result<Vec<TemplateRecord>> {
    let mut out = Vec::new();
    store.scan_prefix(&[keys::TEMPLATE], &mut |key, value| {
        let row: StoredTemplate = rows::decode(key, value)?;
        out.push(TemplateRecord {
            id: String::from_utf8_lossy(&key[1..]).into_owned(),
            configuration: row.configuration,
            disabled: row.disabled,
        });
        Ok(())
    })?;
    Ok(out)
}

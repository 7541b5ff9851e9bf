//! UI configuration (ui-configuration.graphqls: menu and dashboard templates).

use crate::ui_templates::{ConfigurationFields, MenuEntry, UiContext};
use crate::QueryContext;
use async_graphql::{Context, InputObject, Object, Result, SimpleObject};
use skylark_core::Layer;
use std::collections::BTreeMap;

/// `type MenuItem`.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct MenuItem {
    /// Title.
    pub title: String,
    /// Icon name.
    pub icon: Option<String>,
    /// Layer of a leaf; `""` for groups.
    pub layer: String,
    /// Leaf: the layer has services. Group: any sub item is active.
    pub activate: bool,
    /// Sub items (`[]` for leaves).
    pub sub_items: Vec<MenuItem>,
    /// Description.
    pub description: Option<String>,
    /// Documentation link.
    pub document_link: Option<String>,
    /// booster-ui translation key.
    #[graphql(name = "i18nKey")]
    pub i18n_key: Option<String>,
}

/// `type DashboardConfiguration`.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct DashboardConfiguration {
    /// Template id.
    pub id: String,
    /// JSON text of the template's configuration object.
    pub configuration: String,
}

/// `type TemplateChangeStatus`.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct TemplateChangeStatus {
    /// The template id (the new UUID for `addTemplate`).
    pub id: String,
    /// True when the change was made.
    pub status: bool,
    /// Why not, when `status` is false.
    pub message: Option<String>,
}

/// `input NewDashboardSetting`.
#[derive(InputObject, Debug, Clone)]
pub struct NewDashboardSetting {
    /// JSON text of the configuration.
    pub configuration: String,
}

/// `input DashboardSetting`.
#[derive(InputObject, Debug, Clone)]
pub struct DashboardSetting {
    /// Template id.
    pub id: String,
    /// JSON text of the configuration.
    pub configuration: String,
}

fn query_context<'a>(ctx: &Context<'a>) -> Result<&'a QueryContext> {
    ctx.data::<QueryContext>()
}

/// Schemas built without UI templates serve none and refuse editing.
fn ui_context<'a>(ctx: &Context<'a>) -> std::borrow::Cow<'a, UiContext> {
    match ctx.data_opt::<UiContext>() {
        Some(ui) => std::borrow::Cow::Borrowed(ui),
        None => std::borrow::Cow::Owned(UiContext::default()),
    }
}

/// Shipped templates overridden by stored ones, by id; `(configuration, disabled)`.
fn effective_templates(q: &QueryContext, ui: &UiContext) -> BTreeMap<String, (String, bool)> {
    let mut all: BTreeMap<String, (String, bool)> = ui
        .templates
        .templates()
        .iter()
        .map(|t| (t.id.clone(), (t.configuration.clone(), false)))
        .collect();
    match q.storage.list_templates() {
        Ok(stored) => {
            for t in stored {
                all.insert(t.id, (t.configuration, t.disabled));
            }
        }
        // The UI cannot show any dashboard without templates: serve the shipped ones.
        Err(error) => {
            tracing::warn!(%error, "stored ui templates unreadable, serving the shipped ones")
        }
    }
    all
}

fn menu_items(entries: &[MenuEntry], q: &QueryContext) -> Vec<MenuItem> {
    entries
        .iter()
        .map(|entry| {
            let sub_items = menu_items(&entry.menus, q);
            let layer = entry.layer.clone().unwrap_or_default();
            let activate = if sub_items.is_empty() {
                layer_has_services(&layer, q)
            } else {
                sub_items.iter().any(|s| s.activate)
            };
            MenuItem {
                title: entry.title.clone(),
                icon: entry.icon.clone(),
                layer,
                activate,
                sub_items,
                description: entry.description.clone(),
                document_link: entry.document_link.clone(),
                i18n_key: entry.i18n_key.clone(),
            }
        })
        .collect()
}

fn layer_has_services(layer: &str, q: &QueryContext) -> bool {
    let Some(layer) = Layer::from_name(layer) else {
        return false;
    };
    match q.storage.list_services(Some(layer)) {
        Ok(services) => !services.is_empty(),
        Err(error) => {
            tracing::warn!(%error, layer = layer.name(), "services unreadable, menu item inactive");
            false
        }
    }
}

/// `getMenuItems` and the template reads.
#[derive(Default)]
pub struct UiQuery;

#[Object]
impl UiQuery {
    /// The navigation menu from `menu.yaml`, with `activate` from the layers' services.
    async fn get_menu_items(&self, ctx: &Context<'_>) -> Result<Vec<MenuItem>> {
        let q = query_context(ctx)?;
        Ok(menu_items(ui_context(ctx).templates.menu(), q))
    }

    /// Every enabled template (shipped ones overridden by stored changes), sorted by id.
    async fn get_all_templates(&self, ctx: &Context<'_>) -> Result<Vec<DashboardConfiguration>> {
        let q = query_context(ctx)?;
        Ok(effective_templates(q, &ui_context(ctx))
            .into_iter()
            .filter(|(_, (_, disabled))| !disabled)
            .map(|(id, (configuration, _))| DashboardConfiguration { id, configuration })
            .collect())
    }

    /// One template by id (a disabled one too, as OAP); null if unknown.
    async fn get_template(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> Result<Option<DashboardConfiguration>> {
        let q = query_context(ctx)?;
        Ok(effective_templates(q, &ui_context(ctx))
            .remove(&id)
            .map(|(configuration, _)| DashboardConfiguration { id, configuration }))
    }
}

/// Whether a configuration text is something booster-ui can key a dashboard by.
fn check_configuration(text: &str) -> std::result::Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "configuration is not valid JSON at {}:{}: {e}",
            e.line(),
            e.column()
        )
    })?;
    if !value.is_object() {
        return Err("configuration must be a JSON object".into());
    }
    ConfigurationFields::of(&value).map(|_| ())
}

fn refused(id: &str, message: impl Into<String>) -> TemplateChangeStatus {
    TemplateChangeStatus {
        id: id.to_string(),
        status: false,
        message: Some(message.into()),
    }
}

fn done(id: &str) -> TemplateChangeStatus {
    TemplateChangeStatus {
        id: id.to_string(),
        status: true,
        message: None,
    }
}

const EDITING_DISABLED: &str = "UI template editing is disabled on this server; set \
                                SW_ENABLE_UPDATE_UI_TEMPLATE=true to allow adding, changing and \
                                disabling dashboards";

fn store(q: &QueryContext, id: &str, configuration: &str, disabled: bool) -> TemplateChangeStatus {
    match q.storage.put_template(id, configuration, disabled) {
        Ok(()) => done(id),
        Err(error) => {
            tracing::error!(%error, id, "ui template not stored");
            refused(id, format!("the template could not be stored: {error}"))
        }
    }
}

/// `addTemplate`, `changeTemplate`, `disableTemplate`. Refusals are `status: false` with a
/// message, never GraphQL errors (as OAP).
#[derive(Default)]
pub struct UiMutation;

#[Object]
impl UiMutation {
    /// Stores a new template under a generated UUID.
    async fn add_template(
        &self,
        ctx: &Context<'_>,
        setting: NewDashboardSetting,
    ) -> Result<TemplateChangeStatus> {
        let q = query_context(ctx)?;
        if !ui_context(ctx).ui_template_editing {
            return Ok(refused("", EDITING_DISABLED));
        }
        if let Err(reason) = check_configuration(&setting.configuration) {
            return Ok(refused("", reason));
        }
        let id = uuid::Uuid::new_v4().to_string();
        Ok(store(q, &id, &setting.configuration, false))
    }

    /// Replaces an existing template's configuration (and enables it again).
    async fn change_template(
        &self,
        ctx: &Context<'_>,
        setting: DashboardSetting,
    ) -> Result<TemplateChangeStatus> {
        let q = query_context(ctx)?;
        let ui = ui_context(ctx);
        if !ui.ui_template_editing {
            return Ok(refused(&setting.id, EDITING_DISABLED));
        }
        if let Err(reason) = check_configuration(&setting.configuration) {
            return Ok(refused(&setting.id, reason));
        }
        if !effective_templates(q, &ui).contains_key(&setting.id) {
            return Ok(refused(
                &setting.id,
                format!("no template with id {}", setting.id),
            ));
        }
        Ok(store(q, &setting.id, &setting.configuration, false))
    }

    /// Soft-deletes a template: it leaves `getAllTemplates` but stays readable by id.
    async fn disable_template(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> Result<TemplateChangeStatus> {
        let q = query_context(ctx)?;
        let ui = ui_context(ctx);
        if !ui.ui_template_editing {
            return Ok(refused(&id, EDITING_DISABLED));
        }
        match effective_templates(q, &ui).remove(&id) {
            Some((configuration, _)) => Ok(store(q, &id, &configuration, true)),
            None => Ok(refused(&id, format!("no template with id {id}"))),
        }
    }
}

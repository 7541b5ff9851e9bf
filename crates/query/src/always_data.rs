//! Keeps a `data` object in every GraphQL reply.

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest};
use async_graphql::{Response, Value};
use std::sync::Arc;

/// Replaces a null `data` (a rejected document, or an error on a non-null root field) with an
/// empty object. booster-ui reads `res.data.<field>` without checking, so a null `data` breaks
/// whole pages where an empty one only leaves widgets empty; the `errors` are kept.
pub struct AlwaysData;

impl ExtensionFactory for AlwaysData {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AlwaysDataExtension)
    }
}

struct AlwaysDataExtension;

#[async_trait::async_trait]
impl Extension for AlwaysDataExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        if response.data == Value::Null {
            response.data = Value::Object(Default::default());
        }
        response
    }
}

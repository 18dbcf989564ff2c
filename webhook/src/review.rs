//! AdmissionReview in, AdmissionReview out: the webhook's decision for one request.

use crate::mutate::{Outcome, mutate};
use crate::settings::Defaults;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use serde_json::Value;

/// Why a request body could not be answered with a review (the server returns HTTP 400 with this).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON, or not an AdmissionReview.
    #[error("the body is not an AdmissionReview: {0}")]
    Malformed(#[from] serde_json::Error),
    /// An AdmissionReview without a request.
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// What happened, for the decision log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Request uid.
    pub uid: String,
    /// `namespace/name` (or generateName) of the pod.
    pub pod: String,
    /// `injected`, `skipped: …` or `denied: …`.
    pub verdict: String,
    /// `injected`, `skipped` or `denied`.
    pub outcome: &'static str,
    /// Why, as a short fixed name (`not_annotated`, `host_network`, ...).
    pub reason: &'static str,
}

/// Decides one AdmissionReview body and returns the response review (JSON) and the decision.
pub fn review(body: &[u8], defaults: &Defaults) -> Result<(Vec<u8>, Decision), ReviewError> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body)?;
    let request: AdmissionRequest<DynamicObject> = review.try_into().map_err(|_| ReviewError::NoRequest)?;
    let pod_name = describe(&request);
    let response = AdmissionResponse::from(&request);
    let object = request
        .object
        .as_ref()
        .map(serde_json::to_value)
        .transpose()?
        .unwrap_or(Value::Null);
    let (response, verdict, outcome, reason) = match mutate(&object, defaults) {
        Ok(Outcome::NotRequested) => (
            response,
            "skipped: not annotated".to_owned(),
            "skipped",
            "not_annotated",
        ),
        Ok(Outcome::AlreadyInjected) => (
            response,
            "skipped: already injected".to_owned(),
            "skipped",
            "already_injected",
        ),
        Ok(Outcome::Patch(patch)) => match response.clone().with_patch(patch) {
            Ok(patched) => (patched, "injected".to_owned(), "injected", "annotated"),
            Err(e) => (
                response.deny(format!("mcplex could not encode its patch: {e}")),
                "denied: patch encoding".to_owned(),
                "denied",
                "patch_encoding",
            ),
        },
        Err(error) => {
            let message = format!("mcplex sidecar injection refused: {error}");
            (
                response.deny(&message),
                format!("denied: {error}"),
                "denied",
                error.reason(),
            )
        }
    };
    let decision = Decision {
        uid: request.uid.clone(),
        pod: pod_name,
        verdict,
        outcome,
        reason,
    };
    Ok((serde_json::to_vec(&response.into_review())?, decision))
}

fn describe(request: &AdmissionRequest<DynamicObject>) -> String {
    let namespace = request.namespace.clone().unwrap_or_default();
    let name = request
        .object
        .as_ref()
        .and_then(|o| {
            o.metadata
                .name
                .clone()
                .or_else(|| o.metadata.generate_name.as_ref().map(|g| format!("{g}*")))
        })
        .or_else(|| (!request.name.is_empty()).then(|| request.name.clone()))
        .unwrap_or_else(|| "(unnamed)".into());
    format!("{namespace}/{name}")
}

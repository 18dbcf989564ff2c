//! `mcplex-webhook inject`: the webhook's mutation applied to the pod templates in multi-document YAML.

use crate::mutate::{MutateError, Outcome, mutate};
use crate::settings::Defaults;
use serde::Deserialize;
use serde_json::{Value, json};

/// Why a document could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The YAML of one document is invalid.
    #[error("document {document}: invalid YAML: {reason}")]
    Yaml {
        /// 1-based document number.
        document: usize,
        /// The parser's message.
        reason: String,
    },
    /// The mutation refused a document (bad annotation, not a pod).
    #[error("document {document} ({kind} {name}): {source}")]
    Mutate {
        /// 1-based document number.
        document: usize,
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// Why.
        source: MutateError,
    },
    /// The patch did not apply (the document's shape is unexpected).
    #[error("document {document}: the patch does not apply: {reason}")]
    Apply {
        /// 1-based document number.
        document: usize,
        /// Why.
        reason: String,
    },
}

/// Where the pod template sits in each workload kind.
fn template_path(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "ReplicationController" => {
            Some("/spec/template")
        }
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// The result of injecting a stream: the YAML out and one line per document for the user.
pub struct Injected {
    /// Output YAML, documents separated by `---`.
    pub yaml: String,
    /// `kind/name: injected|skipped …` per document.
    pub report: Vec<String>,
}

/// Injects every annotated workload in `input`; other documents pass through unchanged.
pub fn inject(input: &str, defaults: &Defaults) -> Result<Injected, InjectError> {
    let mut documents = Vec::new();
    let mut report = Vec::new();
    for (index, document) in yaml_serde::Deserializer::from_str(input).enumerate() {
        let number = index + 1;
        let mut value = Value::deserialize(document).map_err(|e| InjectError::Yaml {
            document: number,
            reason: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        let kind = value["kind"].as_str().unwrap_or("").to_owned();
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)")
            .to_owned();
        let Some(path) = template_path(&kind) else {
            report.push(format!("{kind}/{name}: passed through (not a workload)"));
            documents.push(value);
            continue;
        };
        let template = if path.is_empty() {
            Some(&mut value)
        } else {
            value.pointer_mut(path)
        };
        let Some(template) = template else {
            return Err(InjectError::Mutate {
                document: number,
                kind,
                name,
                source: MutateError::NotAPod,
            });
        };
        let mut pod = json!({ "metadata": template.get("metadata").cloned().unwrap_or_else(|| json!({})), "spec": template.get("spec").cloned().unwrap_or(Value::Null) });
        match mutate(&pod, defaults).map_err(|source| InjectError::Mutate {
            document: number,
            kind: kind.clone(),
            name: name.clone(),
            source,
        })? {
            Outcome::NotRequested => report.push(format!("{kind}/{name}: skipped (no mcplex.dev/inject: \"true\")")),
            Outcome::AlreadyInjected => report.push(format!("{kind}/{name}: skipped (already injected)")),
            Outcome::Patch(patch) => {
                json_patch::patch(&mut pod, &patch).map_err(|e| InjectError::Apply {
                    document: number,
                    reason: e.to_string(),
                })?;
                template["metadata"] = pod["metadata"].take();
                template["spec"] = pod["spec"].take();
                report.push(format!("{kind}/{name}: injected"));
            }
        }
        documents.push(value);
    }
    let yaml = documents
        .iter()
        .map(|d| {
            let mut text = yaml_serde::to_string(d).unwrap_or_default();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text
        })
        .collect::<Vec<_>>()
        .join("---\n");
    Ok(Injected { yaml, report })
}

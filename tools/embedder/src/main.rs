//! A sentence-embedding server for mcplex's tests and its search evaluation.
//!
//! It serves one BERT-family model (all-MiniLM-L6-v2 in the tests, from the PyPI wheel that carries
//! sentence-transformers' files) at `POST /v1/embeddings`, the OpenAI-compatible shape that embedding
//! servers a platform would run (text-embeddings-inference, vLLM, Ollama, Infinity) also speak. Vectors are
//! mean-pooled over the tokens and L2-normalised, as the model's sentence-transformers pooling config says.
//!
//! Usage: `mcplex-embedder --model-dir DIR --listen 127.0.0.1:0 [--name NAME] [--api-key KEY]`; it prints
//! `listening on http://ADDR` once it is ready.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, bail};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

/// The longest input the model was trained on (sentence-transformers' `max_seq_length` for MiniLM).
const MAX_TOKENS: usize = 256;
/// Inputs per request, as the OpenAI API bounds them.
const MAX_INPUTS: usize = 2048;
/// Request body limit.
const MAX_BODY: usize = 8 << 20;

struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    name: String,
    api_key: Option<String>,
}

impl Model {
    fn load(dir: &Path, name: String, api_key: Option<String>) -> anyhow::Result<Self> {
        let config: Config =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).context("reading config.json")?)?;
        let weights = std::fs::read(dir.join("model.safetensors")).context("reading model.safetensors")?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)?;
        let bert = BertModel::load(vb, &config)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(anyhow::Error::msg)?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(anyhow::Error::msg)?;
        Ok(Self {
            bert,
            tokenizer,
            name,
            api_key,
        })
    }

    /// Unit-length mean-pooled sentence vectors, one per input, in order.
    fn embed(&self, inputs: Vec<String>) -> anyhow::Result<Vec<Vec<f32>>> {
        let encodings = self.tokenizer.encode_batch(inputs, true).map_err(anyhow::Error::msg)?;
        let rows = |get: fn(&tokenizers::Encoding) -> &[u32]| -> anyhow::Result<Tensor> {
            let rows = encodings
                .iter()
                .map(|e| Tensor::new(get(e), &Device::Cpu))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Ok(Tensor::stack(&rows, 0)?)
        };
        let ids = rows(|e| e.get_ids())?;
        let types = rows(|e| e.get_type_ids())?;
        let mask = rows(|e| e.get_attention_mask())?;
        let hidden = self.bert.forward(&ids, &types, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
        Ok(mean.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }
}

#[derive(Deserialize)]
struct EmbeddingsRequest {
    input: Input,
    model: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = json!({"error": {"message": message, "type": "invalid_request_error"}});
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

async fn handle(
    model: Arc<Model>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if request.uri().path() != "/v1/embeddings" {
        return Ok(error(StatusCode::NOT_FOUND, "only POST /v1/embeddings is served"));
    }
    if request.method() != hyper::Method::POST {
        return Ok(error(StatusCode::METHOD_NOT_ALLOWED, "use POST"));
    }
    if let Some(key) = &model.api_key {
        let given = request.headers().get("authorization").and_then(|v| v.to_str().ok());
        if given != Some(format!("Bearer {key}").as_str()) {
            return Ok(error(StatusCode::UNAUTHORIZED, "a valid bearer API key is required"));
        }
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(error(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large or broken")),
    };
    let parsed: EmbeddingsRequest = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}"))),
    };
    if parsed.model != model.name {
        return Ok(error(
            StatusCode::NOT_FOUND,
            &format!("model {:?} is not served here", parsed.model),
        ));
    }
    let inputs = match parsed.input {
        Input::One(text) => vec![text],
        Input::Many(texts) => texts,
    };
    if inputs.is_empty() || inputs.len() > MAX_INPUTS {
        return Ok(error(StatusCode::BAD_REQUEST, "input must hold 1 to 2048 texts"));
    }
    let worker = model.clone();
    let vectors = match tokio::task::spawn_blocking(move || worker.embed(inputs)).await {
        Ok(Ok(vectors)) => vectors,
        Ok(Err(e)) => return Ok(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
        Err(e) => return Ok(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    };
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| json!({"object": "embedding", "index": index, "embedding": embedding}))
        .collect();
    let body =
        json!({"object": "list", "data": data, "model": model.name, "usage": {"prompt_tokens": 0, "total_tokens": 0}});
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response"))
}

fn main() -> anyhow::Result<()> {
    let mut model_dir = None;
    let mut listen: SocketAddr = "127.0.0.1:0".parse()?;
    let mut name = "all-MiniLM-L6-v2".to_string();
    let mut api_key = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model-dir" => model_dir = Some(PathBuf::from(value()?)),
            "--listen" => listen = value()?.parse()?,
            "--name" => name = value()?,
            "--api-key" => api_key = Some(value()?),
            other => bail!("unknown argument {other}"),
        }
    }
    let model_dir = model_dir.context("--model-dir is required")?;
    let model = Arc::new(Model::load(&model_dir, name, api_key)?);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!("listening on http://{}", listener.local_addr()?);
            loop {
                let (stream, _) = listener.accept().await?;
                let model = model.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(model.clone(), request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
}

//! Loading an ONNX model with tract once, optimised for a fixed input shape, and running it.

use tract_onnx::prelude::*;

use crate::error::{ModelError, anyhow_like::TractError as Te};

type Plan = std::sync::Arc<TypedRunnableModel>;

/// A model parsed, typed for one concrete input shape, optimised and ready to run.
#[derive(Debug)]
pub(crate) struct OnnxModel {
    name: &'static str,
    plan: Plan,
    input_shape: Vec<usize>,
}

/// A parsed ONNX file, before it is typed for an input shape (see [`OnnxModel::plan`]).
#[derive(Clone)]
pub(crate) struct Parsed {
    name: &'static str,
    model: InferenceModel,
}

impl Parsed {
    /// The names of the file's output tensors that start with `prefix`, in the file's order.
    pub(crate) fn outputs_starting_with(&self, prefix: &str) -> Vec<String> {
        self.model
            .outputs
            .iter()
            .filter_map(|o| self.model.outlet_label(*o))
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }
}

impl OnnxModel {
    /// Parses, types for `input_shape`, optimises: every output of the file.
    pub(crate) fn load(
        name: &'static str,
        bytes: &[u8],
        input_shape: &[usize],
    ) -> Result<Self, ModelError> {
        Self::plan(Self::parse(name, bytes)?, input_shape, None)
    }

    /// Parses an ONNX file with exactly one input.
    pub(crate) fn parse(name: &'static str, bytes: &[u8]) -> Result<Parsed, ModelError> {
        if bytes.is_empty() {
            return Err(ModelError::Interface {
                model: name,
                reason: "the model file is empty".into(),
            });
        }
        let model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(|e| ModelError::Parse {
                model: name,
                source: Te(e),
            })?;
        if model.input_outlets().map_err(iface(name))?.len() != 1 {
            return Err(ModelError::Interface {
                model: name,
                reason: "expected exactly one input".into(),
            });
        }
        Ok(Parsed { name, model })
    }

    /// Types `parsed` for `input_shape` and optimises it, keeping only `outputs` (by tensor
    /// name, in that order) and what they need when given, else every output.
    pub(crate) fn plan(
        parsed: Parsed,
        input_shape: &[usize],
        outputs: Option<&[&str]>,
    ) -> Result<Self, ModelError> {
        let Parsed { name, mut model } = parsed;
        if let Some(outputs) = outputs {
            model.select_outputs_by_name(outputs).map_err(iface(name))?;
        }
        let plan = model
            .with_input_fact(0, f32::fact(input_shape).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(iface(name))?;
        Ok(OnnxModel {
            name,
            plan,
            input_shape: input_shape.to_vec(),
        })
    }

    /// How many outputs the plan returns.
    pub(crate) fn outputs(&self) -> usize {
        self.plan.model().outputs.len()
    }

    /// Runs the model on `input` (laid out in `input_shape`), returning every output as f32.
    pub(crate) fn run(&self, input: Vec<f32>) -> Result<Vec<Output>, ModelError> {
        let run_err = |e| ModelError::Run {
            model: self.name,
            source: Te(e),
        };
        let tensor = Tensor::from_shape(&self.input_shape, &input).map_err(run_err)?;
        let outputs = self
            .plan
            .run(tvec!(tensor.into_tvalue()))
            .map_err(run_err)?;
        outputs
            .into_iter()
            .map(|v| {
                let view = v.to_plain_array_view::<f32>().map_err(run_err)?;
                Ok(Output {
                    shape: view.shape().to_vec(),
                    data: view.iter().copied().collect(),
                })
            })
            .collect()
    }
}

fn iface(model: &'static str) -> impl Fn(TractError) -> ModelError {
    move |e| ModelError::Interface {
        model,
        reason: format!("{e:#}"),
    }
}

/// One model output: shape and row-major data.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

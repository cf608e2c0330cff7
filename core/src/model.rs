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
    /// Whether the file has a tensor (an output or an intermediate value) named `name`.
    pub(crate) fn has_tensor(&self, name: &str) -> bool {
        self.model.find_outlet_label(name).is_some()
    }

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
        let typed = model
            .with_input_fact(0, f32::fact(input_shape).into())
            .and_then(|m| m.into_optimized());
        Self::runnable(name, typed, input_shape)
    }

    /// Types and optimises the part of `parsed` that computes `outputs` from the tensor named
    /// `from` alone, with that tensor as the plan's input in `input_shape` (what produced it is
    /// pruned). Errors when the file has no such tensor or `outputs` need more than it.
    pub(crate) fn plan_from(
        parsed: Parsed,
        from: &str,
        input_shape: &[usize],
        outputs: &[&str],
    ) -> Result<Self, ModelError> {
        let Parsed { name, mut model } = parsed;
        let cut = model
            .find_outlet_label(from)
            .ok_or_else(|| ModelError::Interface {
                model: name,
                reason: format!("no tensor named {from}"),
            })?;
        let consumers = model.outlet_successors(cut).to_vec();
        let typed = model
            .add_source(from, f32::fact(input_shape).into())
            .and_then(|source| {
                for inlet in consumers {
                    model.add_edge(source, inlet)?;
                }
                model.set_input_outlets(&[source])?;
                model.select_outputs_by_name(outputs)?;
                model.into_optimized()
            });
        Self::runnable(name, typed, input_shape)
    }

    /// The runnable plan of an optimised model whose input has `input_shape`.
    fn runnable(
        name: &'static str,
        typed: TractResult<TypedModel>,
        input_shape: &[usize],
    ) -> Result<Self, ModelError> {
        let plan = typed.and_then(|m| m.into_runnable()).map_err(iface(name))?;
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
                let tensor = v.into_tensor();
                let view = tensor.to_plain_array_view::<f32>().map_err(run_err)?;
                if view.to_slice().is_some() {
                    return Ok(Output { tensor });
                }
                // Not in row-major order: copy it into a tensor that is.
                let data: Vec<f32> = view.iter().copied().collect();
                let shape = view.shape().to_vec();
                Ok(Output {
                    tensor: Tensor::from_shape(&shape, &data).map_err(run_err)?,
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

/// One model output: an f32 tensor in row-major order, as the plan returned it (not copied).
#[derive(Debug, Clone)]
pub(crate) struct Output {
    tensor: Tensor,
}

impl Output {
    pub(crate) fn shape(&self) -> &[usize] {
        self.tensor.shape()
    }

    /// The values in row-major order ([`OnnxModel::run`] checked that they are).
    pub(crate) fn data(&self) -> &[f32] {
        self.tensor
            .to_plain_array_view::<f32>()
            .ok()
            .and_then(|v| v.to_slice())
            .unwrap_or_default()
    }
}

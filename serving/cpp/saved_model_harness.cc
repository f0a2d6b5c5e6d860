// Loads an exported keras-mt3 SavedModel the way TensorFlow Serving does (tag "serve",
// SignatureDef lookup, Session::Run) and runs signatures on raw float32 input.
//
//   saved_model_harness [--disable-xla] MODEL_DIR SIGNATURE INPUT.f32 [SIGNATURE INPUT.f32 ...]
//
// INPUT.f32 holds little-endian float32 values: for serving_default, mono 16 kHz samples of
// one clip; for the token signatures (decode_tokens, decode_xla), log-mel frames
// [n, frames, bins] (the shape's tail comes from the signature).
// --disable-xla calls tensorflow::DisableXlaCompilation() first, as tensorflow_model_server
// does unless started with --xla_cpu_compilation_enabled=true. The model is loaded once and the
// signatures run one after the other in the same session, as requests would.
//
// For each signature it prints "signature NAME", then one line per note
// ("note ONSET OFFSET PITCH VELOCITY PROGRAM IS_DRUM") or per token row ("tokens ID ID ..."),
// then "ok", or "error: STATUS" if Session::Run failed. Exits with 0 when every run succeeded,
// 3 when one failed, 2 on bad arguments or a model that does not load.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "tensorflow/cc/saved_model/loader.h"
#include "tensorflow/compiler/jit/flags.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"
#include "tensorflow/core/public/session.h"

namespace {

constexpr int kUsageError = 2;
constexpr int kRunError = 3;
// tensorflow::kSavedModelTagServe; its header is not shipped in the pip wheel.
constexpr char kServeTag[] = "serve";

std::vector<float> ReadFloats(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::vector<float> values(bytes.size() / sizeof(float));
  std::copy(bytes.begin(), bytes.begin() + values.size() * sizeof(float),
            reinterpret_cast<char*>(values.data()));
  return values;
}

// The graph tensor name bound to `key` in `entries` (a SignatureDef's inputs or outputs).
template <typename Map>
bool TensorName(const Map& entries, const std::string& key, std::string* name) {
  auto found = entries.find(key);
  if (found == entries.end()) return false;
  *name = found->second.name();
  return true;
}

int Fail(const std::string& message, int code) {
  std::cout << "error: " << message << std::endl;
  return code;
}

// Runs one signature on the values in `input_path` and prints its results; returns 0,
// kRunError (Session::Run failed) or kUsageError (no such signature or input).
int RunSignature(tensorflow::SavedModelBundle& bundle, const std::string& signature_name,
                 const std::string& input_path) {
  std::cout << "signature " << signature_name << std::endl;
  const auto& signatures = bundle.meta_graph_def.signature_def();
  auto signature = signatures.find(signature_name);
  if (signature == signatures.end()) return Fail("no signature " + signature_name, kUsageError);
  const auto& inputs = signature->second.inputs();
  const auto& outputs = signature->second.outputs();

  std::vector<float> values = ReadFloats(input_path);
  std::vector<std::pair<std::string, tensorflow::Tensor>> feeds;
  std::vector<std::string> fetches;
  std::string name;
  bool audio = TensorName(inputs, "waveform", &name);
  if (audio) {
    const int64_t samples = static_cast<int64_t>(values.size());
    tensorflow::Tensor waveform(tensorflow::DT_FLOAT, tensorflow::TensorShape({1, samples}));
    std::copy(values.begin(), values.end(), waveform.flat<float>().data());
    feeds.emplace_back(name, waveform);
    tensorflow::Tensor lengths(tensorflow::DT_INT32, tensorflow::TensorShape({1}));
    lengths.flat<int32_t>()(0) = static_cast<int32_t>(samples);
    if (!TensorName(inputs, "lengths", &name)) return Fail("no `lengths` input", kUsageError);
    feeds.emplace_back(name, lengths);
    for (const char* key : {"num_notes", "onset_times", "offset_times", "pitches", "velocities",
                            "programs", "is_drum"}) {
      if (!TensorName(outputs, key, &name)) return Fail(std::string("no output ") + key, kUsageError);
      fetches.push_back(name);
    }
  } else {
    if (!TensorName(inputs, "encoder_inputs", &name)) return Fail("unknown inputs", kUsageError);
    const auto& shape = inputs.at("encoder_inputs").tensor_shape();
    const int64_t frames = shape.dim(1).size(), bins = shape.dim(2).size();
    const int64_t rows = static_cast<int64_t>(values.size()) / (frames * bins);
    tensorflow::Tensor frames_tensor(tensorflow::DT_FLOAT,
                                     tensorflow::TensorShape({rows, frames, bins}));
    std::copy(values.begin(), values.begin() + rows * frames * bins,
              frames_tensor.flat<float>().data());
    feeds.emplace_back(name, frames_tensor);
    if (!TensorName(outputs, "tokens", &name)) return Fail("no output tokens", kUsageError);
    fetches.push_back(name);
  }

  std::vector<tensorflow::Tensor> results;
  tensorflow::Status status = bundle.GetSession()->Run(feeds, fetches, {}, &results);
  if (!status.ok()) return Fail(status.ToString(), kRunError);

  if (audio) {
    const int32_t count = results[0].flat<int32_t>()(0);
    auto onsets = results[1].matrix<float>();
    auto offsets = results[2].matrix<float>();
    auto pitches = results[3].matrix<int32_t>();
    auto velocities = results[4].matrix<int32_t>();
    auto programs = results[5].matrix<int32_t>();
    auto is_drum = results[6].matrix<bool>();
    for (int32_t i = 0; i < count; ++i) {
      std::printf("note %.9g %.9g %d %d %d %d\n", onsets(0, i), offsets(0, i), pitches(0, i),
                  velocities(0, i), programs(0, i), is_drum(0, i) ? 1 : 0);
    }
  } else {
    auto tokens = results[0].matrix<int32_t>();
    for (int64_t row = 0; row < tokens.dimension(0); ++row) {
      std::printf("tokens");
      for (int64_t column = 0; column < tokens.dimension(1); ++column) {
        std::printf(" %d", tokens(row, column));
      }
      std::printf("\n");
    }
  }
  std::printf("ok\n");
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  bool disable_xla = false;
  if (!args.empty() && args[0] == "--disable-xla") {
    disable_xla = true;
    args.erase(args.begin());
  }
  if (args.size() < 3 || args.size() % 2 != 1) {
    std::cerr << "usage: saved_model_harness [--disable-xla] MODEL_DIR SIGNATURE INPUT.f32 "
                 "[SIGNATURE INPUT.f32 ...]\n";
    return kUsageError;
  }
  if (disable_xla) tensorflow::DisableXlaCompilation();

  tensorflow::SavedModelBundle bundle;
  tensorflow::SessionOptions session_options;
  tensorflow::RunOptions run_options;
  tensorflow::Status status = tensorflow::LoadSavedModel(
      session_options, run_options, args[0], {kServeTag}, &bundle);
  if (!status.ok()) return Fail("loading the SavedModel: " + status.ToString(), kUsageError);

  int exit_code = 0;
  for (size_t i = 1; i + 1 < args.size(); i += 2) {
    const int code = RunSignature(bundle, args[i], args[i + 1]);
    if (code == kUsageError) return code;
    if (code != 0) exit_code = code;
  }
  return exit_code;
}

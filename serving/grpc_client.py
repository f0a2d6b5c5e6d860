"""Transcribe an audio file with MT3 on TensorFlow Serving's gRPC API and write a MIDI file.

    python serving/grpc_client.py song.wav -o song.mid [--server localhost:8500]

Needs `pip install tensorflow-serving-api` (which brings grpcio and TensorFlow for the tensor
protos), plus numpy, soundfile, soxr and pretty_midi; not keras-mt3.
"""

import sys

import mt3_client_common as common

MISSING_DEPENDENCY = (
    "grpc_client.py needs the TF Serving API protos: `pip install tensorflow-serving-api` "
    "(or use rest_client.py, which needs no extra package)"
)


def predict(server, model, samples, timeout):
    """The signature's outputs (`{name: numpy array}`) for one clip."""
    try:
        # The TF Serving protos first: when they are missing, fail before importing TensorFlow.
        from tensorflow_serving.apis import predict_pb2
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        import grpc
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(f"{MISSING_DEPENDENCY} ({error})") from None

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    request.inputs["waveform"].CopyFrom(tf.make_tensor_proto(samples[None, :]))
    request.inputs["lengths"].CopyFrom(tf.make_tensor_proto([len(samples)], dtype=tf.int32))
    # Long audio is tens of MB: lift gRPC's 4 MB default (the model server accepts 2 GB).
    unlimited = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(server, options=unlimited) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            raise RuntimeError(f"the server failed the request: {error.code().name}: "
                               f"{error.details()}") from None
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def main(argv=None):
    args = common.argument_parser(__doc__.split("\n\n")[0], "localhost:8500").parse_args(argv)
    return common.run(predict, args, errors=(ImportError, OSError, RuntimeError, ValueError))


if __name__ == "__main__":
    sys.exit(main())

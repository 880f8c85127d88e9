"""benchmarks/op_profile.py: op events summed by type and by op, per call; the runtime's enclosing events left out."""
from conftest import load_benchmark
from tensorflow.tsl.profiler.protobuf import xplane_pb2


def _space(events):
    """An XSpace with one host plane: ``events`` is a list of (line name, event name, duration in ms)."""
    space = xplane_pb2.XSpace()
    plane = space.planes.add(name="/host:CPU")
    lines = {}
    for index, (line_name, name, ms) in enumerate(events, start=1):
        plane.event_metadata[index].id = index
        plane.event_metadata[index].name = name
        if line_name not in lines:
            lines[line_name] = plane.lines.add(name=line_name)
        lines[line_name].events.add(metadata_id=index, duration_ps=int(ms * 1e9))
    return space


def test_op_times_sums_by_type_and_op_per_call():
    profile = load_benchmark("op_profile")
    space = _space([
        ("tf_Compute/1", "head/conv1/BiasAdd:_MklNativeFusedConv2D", 30.0),
        ("tf_Compute/2", "head/conv2/BiasAdd:_MklNativeFusedConv2D", 50.0),
        ("tf_Compute/1", "head/fc1/MatMul:_MklMatMul", 40.0),
        ("tf_Compute/1", "CpuExecutable::ExecuteAsyncOnStream", 100.0),
        ("tf_Compute/1", "ExecutorState::Process", 500.0),  # encloses the ops above
        ("tf_Compute/1", "MemoryAllocation", 7.0),
        ("tf_numa_-1_Eigen/3", "head/conv1/BiasAdd:_MklNativeFusedConv2D", 25.0),  # a worker inside an op
    ])
    by_type, by_op = profile.op_times(space, calls=2)
    assert dict(by_type) == {"_MklNativeFusedConv2D": 40.0, "_MklMatMul": 20.0, "XLA programs": 50.0}
    assert by_op["head/conv1/BiasAdd:_MklNativeFusedConv2D"] == 15.0
    assert by_op["XLA programs"] == 50.0

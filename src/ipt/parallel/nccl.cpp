#include "ipt/parallel/nccl.h"

#include "ipt/common/error.h"

#ifdef IPT_WITH_CUDA
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace ipt::parallel {

#ifdef IPT_WITH_CUDA

namespace {

class ProcessGroupNcclGroup : public NcclGroup {
 public:
  ProcessGroupNcclGroup(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                        std::chrono::milliseconds timeout) {
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    // Its own key prefix: the Gloo group already uses the store's plain keys.
    group_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>("nccl", store), rank,
                                                         size, options);
  }

  std::vector<torch::Tensor> all_gather(const torch::Tensor& t) override {
    std::vector<torch::Tensor> inputs{t.detach().contiguous()};
    std::vector<std::vector<torch::Tensor>> outputs(1);
    for (int r = 0; r < group_->getSize(); ++r) outputs[0].push_back(torch::empty_like(inputs[0]));
    group_->allgather(outputs, inputs)->wait();  // on the GPU: the current stream waits, not the host
    return outputs[0];
  }

  void all_reduce_sum(torch::Tensor& t) override {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> tensors{t.is_contiguous() ? t : t.contiguous()};
    group_->allreduce(tensors)->wait();
    if (!tensors[0].is_same(t)) t.copy_(tensors[0]);
  }

 private:
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> group_;
};

}  // namespace

std::unique_ptr<NcclGroup> NcclGroup::create(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                             std::chrono::milliseconds timeout) {
  try {
    return std::make_unique<ProcessGroupNcclGroup>(store, rank, size, timeout);
  } catch (const c10::Error& e) {
    throw Error(std::string("distributed run: cannot create the NCCL group: ") + e.what_without_backtrace());
  }
}

#else

std::unique_ptr<NcclGroup> NcclGroup::create(const c10::intrusive_ptr<c10d::Store>&, int, int,
                                             std::chrono::milliseconds) {
  throw Error("distributed run: a collective on a GPU tensor needs NCCL, which only the CUDA build has "
              "(make build-torch2; docs/gpu.md)");
}

#endif

}  // namespace ipt::parallel

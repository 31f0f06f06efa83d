// The order in which the certificate's expansion adds blocks for one query head: the unselected block
// with the largest bound first, the lower block on ties (decode_attention.cc). A pass over every block
// per added block made an expansion quadratic in the context (at 128K, hundreds of blocks added per KV
// head from 4,096); a heap per query head, built when that head is first the worst, gives each pick in
// O(log n_blocks). Blocks another head's pick selected leave a heap when they reach its top.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

namespace rl::prhs {

class ExpansionOrder {
 public:
  // table [groups][n_blocks]: the bounds; they must not change while this order is used.
  ExpansionOrder(const std::vector<double>& table, int groups, int n_blocks)
      : table_(table), nb_(n_blocks), heaps_(groups), state_(groups, State::Unbuilt) {}

  // For query head g, among the blocks with !sel[b]: the block to add next (-1: none left), and in
  // `second` the runner-up (-1: none), whose bound is the next largest. The caller selects the block
  // returned before it asks again.
  int next(int g, const std::vector<char>& sel, int& second) {
    if (state_[g] == State::Unbuilt) build(g, sel);
    if (state_[g] == State::Scan) return scan(g, sel, second);
    std::vector<int>& heap = heaps_[g];
    const Later later{row(g)};
    auto pop = [&] {
      std::pop_heap(heap.begin(), heap.end(), later);
      const int b = heap.back();
      heap.pop_back();
      return b;
    };
    auto drop_selected = [&] {
      while (!heap.empty() && sel[heap.front()]) pop();
    };
    drop_selected();
    second = -1;
    if (heap.empty()) return -1;
    const int best = pop();
    drop_selected();
    if (!heap.empty()) second = heap.front();
    return best;
  }

 private:
  enum class State { Unbuilt, Heap, Scan };
  // Heap order: a comes after b when its bound is smaller, or equal and its block higher.
  struct Later {
    const double* row;
    bool operator()(int a, int b) const { return row[a] < row[b] || (row[a] == row[b] && a > b); }
  };
  const double* row(int g) const { return table_.data() + static_cast<size_t>(g) * nb_; }

  void build(int g, const std::vector<char>& sel) {
    const double* r = row(g);
    std::vector<int>& heap = heaps_[g];
    for (int b = 0; b < nb_; b++) {
      if (sel[b]) continue;
      if (std::isnan(r[b])) {  // no strict order: keep the plain pass's picks instead
        heap.clear();
        state_[g] = State::Scan;
        return;
      }
      heap.push_back(b);
    }
    std::make_heap(heap.begin(), heap.end(), Later{r});
    state_[g] = State::Heap;
  }
  // The same picks by one pass over every block.
  int scan(int g, const std::vector<char>& sel, int& second) const {
    const double* r = row(g);
    int best = -1;
    second = -1;
    for (int b = 0; b < nb_; b++) {
      if (sel[b]) continue;
      if (best < 0 || r[b] > r[best]) second = best, best = b;
      else if (second < 0 || r[b] > r[second]) second = b;
    }
    return best;
  }

  const std::vector<double>& table_;
  int nb_;
  std::vector<std::vector<int>> heaps_;  // [group] unselected blocks (and some selected since), a max-heap by bound
  std::vector<State> state_;             // [group]
};

}  // namespace rl::prhs

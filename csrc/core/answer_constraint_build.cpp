// Building the constraint's tables (see answer_constraint.hpp): the vocabulary trie, the allowed tokens of
// every automaton state, liveness, think-phase bans and forced continuations. Runs once per index.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/answer_constraint.hpp"

namespace segzero {

namespace {

// A byte trie of the vocabulary, used only while building the tables.
struct Trie {
  std::vector<uint32_t> first_child{kReject}, next_sibling{kReject}, last_child{kReject};
  std::vector<uint8_t> byte{0};
  std::vector<uint32_t> ids_begin{0}, ids_count{0};  // range in `order`
  std::vector<int32_t> order;                         // token ids sorted by their bytes

  uint32_t child(uint32_t node, uint8_t c) const {
    for (uint32_t k = first_child[node]; k != kReject; k = next_sibling[k])
      if (byte[k] == c) return k;
    return kReject;
  }

  void build(const std::vector<std::string>& tokens, std::vector<int32_t> ids) {
    std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
      const int c = tokens[a].compare(tokens[b]);  // memcmp order (unsigned bytes)
      return c < 0 || (c == 0 && a < b);
    });
    order = std::move(ids);
    for (size_t i = 0; i < order.size(); ++i) {
      uint32_t node = 0;
      for (unsigned char c : tokens[order[i]]) {
        // Tokens arrive sorted, so a matching child can only be the most recently added one.
        const uint32_t last = last_child[node];
        if (last != kReject && byte[last] == c) {
          node = last;
          continue;
        }
        const uint32_t fresh = static_cast<uint32_t>(byte.size());
        byte.push_back(c);
        first_child.push_back(kReject);
        next_sibling.push_back(kReject);
        last_child.push_back(kReject);
        ids_begin.push_back(0);
        ids_count.push_back(0);
        if (last == kReject) first_child[node] = fresh;
        else next_sibling[last] = fresh;
        last_child[node] = fresh;
        node = fresh;
      }
      if (ids_count[node] == 0) ids_begin[node] = static_cast<uint32_t>(i);
      ids_count[node] += 1;
    }
  }
};

}  // namespace

bool ConstraintIndex::build_tables(std::string& error) {
  const size_t n_tokens = tokens_.size();
  const uint32_t n_grammar = n_states_ - n_free_;
  // Trie of the tokens that may ever appear in an answer.
  std::vector<int32_t> usable;
  usable.reserve(n_tokens);
  for (size_t id = 0; id < n_tokens; ++id) {
    if (!tokens_[id].empty() && !(token_flags_[id] & (kFlagBanned | kFlagEos)))
      usable.push_back(static_cast<int32_t>(id));
  }
  Trie trie;
  trie.build(tokens_, std::move(usable));

  // 1. Grammar states: the tokens that keep the text a valid prefix, with the state each one leads to,
  //    by walking the trie with the automaton (a subtree is left as soon as the automaton rejects).
  std::vector<uint32_t> off(n_grammar + 1, 0);
  std::vector<std::pair<int32_t, uint32_t>> edges;  // (token, next state), grouped by state, by token
  std::vector<std::pair<uint32_t, uint32_t>> stack;
  for (uint32_t g = 0; g < n_grammar; ++g) {
    const uint32_t state = n_free_ + g;
    const size_t first = edges.size();
    if (state != done_state_) {
      stack.assign(1, {0u, state});
      while (!stack.empty()) {
        const auto [node, st] = stack.back();
        stack.pop_back();
        for (uint32_t k = trie.first_child[node]; k != kReject; k = trie.next_sibling[k]) {
          const uint32_t nx = step_grammar(st, trie.byte[k]);
          if (nx == kReject) continue;
          for (uint32_t i = 0; i < trie.ids_count[k]; ++i) edges.push_back({trie.order[trie.ids_begin[k] + i], nx});
          if (nx != done_state_) stack.push_back({k, nx});
        }
      }
      std::sort(edges.begin() + static_cast<std::ptrdiff_t>(first), edges.end());
    }
    off[g + 1] = static_cast<uint32_t>(edges.size());
  }

  // 2. Liveness: a state is live when some token sequence leads from it to done. A valid prefix is not
  //    enough with vocabularies that lack single bytes (a token could lead where nothing can follow).
  //    The automaton is acyclic (every byte moves forward), so one depth-first pass decides every state.
  live_.assign(n_states_, 0);  // 0 unknown, 1 live, 2 dead
  live_[done_state_] = 1;
  for (uint32_t f = 0; f < n_free_; ++f) live_[f] = 1;
  std::vector<std::pair<uint32_t, uint32_t>> dfs;  // (state, next edge to look at)
  for (uint32_t g = 0; g < n_grammar; ++g) {
    if (live_[n_free_ + g]) continue;
    dfs.assign(1, {n_free_ + g, off[g]});
    while (!dfs.empty()) {
      auto& [st, e] = dfs.back();
      const uint32_t gs = st - n_free_;
      bool pushed = false;
      for (; e < off[gs + 1]; ++e) {
        const uint32_t nx = edges[e].second;
        if (live_[nx] == 1) break;
        if (live_[nx] == 0) {
          dfs.push_back({nx, off[nx - n_free_]});
          pushed = true;
          break;
        }
      }
      if (pushed) continue;
      live_[st] = e < off[gs + 1] ? 1 : 2;
      dfs.pop_back();
    }
  }
  if (live_[budget_state_] != 1) {
    error = "the vocabulary cannot spell the answer skeleton (no tokenization of "
            "'</think><answer>' and the answer JSON): it needs tokens covering every byte of it";
    return false;
  }
  auto usable_next = [&](uint32_t nx) { return nx != kReject && live_[nx] == 1; };

  // 3. Allowed ids: valid prefix and live.
  allowed_off_.assign(n_grammar + 1, 0);
  for (uint32_t g = 0; g < n_grammar; ++g) {
    for (uint32_t e = off[g]; e < off[g + 1]; ++e)
      if (live_[edges[e].second] == 1) allowed_.push_back(edges[e].first);
    allowed_off_[g + 1] = static_cast<uint32_t>(allowed_.size());
  }

  // 4. Think phase: per tag-matcher state, the ids to ban: banned + eos + tokens that complete a tag and
  //    continue where the grammar rejects or nothing can follow. Only a token holding '>' can end a tag.
  std::vector<int32_t> always;
  for (size_t id = 0; id < token_flags_.size(); ++id)
    if (token_flags_[id] & (kFlagBanned | kFlagEos)) always.push_back(static_cast<int32_t>(id));
  std::vector<int32_t> with_gt;
  for (size_t id = 0; id < n_tokens; ++id)
    if (!(token_flags_[id] & (kFlagBanned | kFlagEos)) && tokens_[id].find('>') != std::string::npos)
      with_gt.push_back(static_cast<int32_t>(id));
  free_banned_.assign(n_free_, {});
  for (uint32_t m = 0; m < n_free_; ++m) {
    std::vector<int32_t>& bans = free_banned_[m];
    bans = always;
    for (int32_t id : with_gt)
      if (!usable_next(run_bytes(m, tokens_[id]))) bans.push_back(id);
    std::sort(bans.begin(), bans.end());
  }

  // 5. Forced continuations, tokenized greedily with the longest vocabulary entry that leads to a live
  //    state (the smallest id among entries with the same bytes).
  forced_off_.assign(n_grammar + 1, 0);
  std::vector<uint32_t> path;  // path[i] = state after the first i forced bytes
  for (uint32_t g = 0; g < n_grammar; ++g) {
    const uint32_t state = n_free_ + g;
    const std::string text = live_[state] == 1 ? forced_text(state) : std::string();
    path.assign(1, state);
    for (unsigned char c : text) path.push_back(step_grammar(path.back(), c));
    size_t pos = 0;
    while (pos < text.size()) {
      uint32_t node = 0, best_node = kReject;
      size_t best_len = 0;
      for (size_t i = pos; i < text.size(); ++i) {
        node = trie.child(node, static_cast<uint8_t>(text[i]));
        if (node == kReject) break;
        if (trie.ids_count[node] > 0 && usable_next(path[i + 1])) {
          best_node = node;
          best_len = i + 1 - pos;
        }
      }
      if (best_node == kReject) break;
      forced_.push_back(trie.order[trie.ids_begin[best_node]]);
      pos += best_len;
    }
    forced_off_[g + 1] = static_cast<uint32_t>(forced_.size());
  }
  return true;
}

}  // namespace segzero

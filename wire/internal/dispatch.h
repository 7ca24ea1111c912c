// Compile-time mapping from a MessageType value to its struct in the Message variant.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>
#include <variant>

#include "wire/messages.h"

namespace hasync::wire::internal {

// Calls f(std::type_identity<M>{}) for the alternative M of Message whose kType is
// `type`; returns false if no alternative has it.
template <class F>
bool VisitType(MessageType type, F&& f) {
  return [&]<size_t... I>(std::index_sequence<I...>) {
    return ((std::variant_alternative_t<I, Message>::kType == type
                 ? (f(std::type_identity<std::variant_alternative_t<I, Message>>{}), true)
                 : false) ||
            ...);
  }
  (std::make_index_sequence<std::variant_size_v<Message>>{});
}

// No two alternatives may share a type value, or decoding would be ambiguous.
consteval bool TypesAreUnique() {
  return []<size_t... I>(std::index_sequence<I...>) {
    MessageType types[] = {std::variant_alternative_t<I, Message>::kType...};
    for (size_t i = 0; i < sizeof...(I); ++i) {
      for (size_t j = i + 1; j < sizeof...(I); ++j) {
        if (types[i] == types[j]) return false;
      }
    }
    return true;
  }
  (std::make_index_sequence<std::variant_size_v<Message>>{});
}
static_assert(TypesAreUnique(), "two messages share a MessageType value");

}  // namespace hasync::wire::internal

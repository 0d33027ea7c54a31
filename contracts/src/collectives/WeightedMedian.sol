// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title WeightedMedian
 * @notice A weighted lower median kept incrementally: the smallest key with at least half the
 *         total weight at or below it (the rule the market's tally checks for asks).
 * @dev Distinct keys form a sorted doubly linked list (one storage word per key: neighbours and
 *      weight); the median's key and the weight strictly below it are stored, so reading the
 *      median is O(1). Adding or removing weight moves the median pointer across the levels
 *      between the old and the new median; a new key is linked by walking from a given level,
 *      so gas grows with the levels walked, never with the number of voters behind them. Key 0
 *      is the list's end: callers store their values shifted by one.
 */
library WeightedMedian {
    struct Level {
        uint96 prev;
        uint96 next;
        uint64 weight;
    }

    struct List {
        mapping(uint96 key => Level) levels;
        uint96 head; // lowest key
        uint96 median; // key of the weighted lower median (0: no weight)
        uint64 below; // weight strictly below the median
        uint64 total;
    }

    /// @dev Adds `weight` at `key`, linking the key when it is new by walking from the level
    ///      `start` (0: from the median).
    function add(List storage self, uint96 key, uint64 weight, uint96 start) internal {
        Level storage level = self.levels[key];
        if (level.weight == 0) _link(self, key, start == 0 ? self.median : start);
        level.weight += weight;
        if (key < self.median) self.below += weight;
        self.total += weight;
        _rebalance(self);
    }

    /// @dev Removes `weight` from `key` (which holds at least that much).
    function remove(List storage self, uint96 key, uint64 weight) internal {
        Level storage level = self.levels[key];
        level.weight -= weight;
        if (key < self.median) self.below -= weight;
        self.total -= weight;
        _rebalance(self);
        // the median never rests on an empty level once rebalanced, so unlinking is safe
        if (level.weight == 0) _unlink(self, key, level);
    }

    /// @dev Every key with its weight, ascending.
    function levelsOf(List storage self) internal view returns (uint96[] memory keys, uint64[] memory weights) {
        uint256 n;
        for (uint96 key = self.head; key != 0; key = self.levels[key].next) ++n;
        keys = new uint96[](n);
        weights = new uint64[](n);
        uint96 cursor = self.head;
        for (uint256 i = 0; i < n; ++i) {
            Level storage level = self.levels[cursor];
            keys[i] = cursor;
            weights[i] = level.weight;
            cursor = level.next;
        }
    }

    /// @dev Links a new key between its neighbours, walking from the linked level `from`
    ///      (0 only when the list is empty).
    function _link(List storage self, uint96 key, uint96 from) private {
        uint96 prev;
        uint96 next = self.head;
        if (from != 0 && from < key) {
            prev = from;
            next = self.levels[from].next;
            while (next != 0 && next < key) {
                prev = next;
                next = self.levels[next].next;
            }
        } else if (from != 0) {
            next = from;
            prev = self.levels[from].prev;
            while (prev != 0 && prev > key) {
                next = prev;
                prev = self.levels[prev].prev;
            }
        }
        Level storage level = self.levels[key];
        level.prev = prev;
        level.next = next;
        if (prev == 0) self.head = key;
        else self.levels[prev].next = key;
        if (next != 0) self.levels[next].prev = key;
    }

    function _unlink(List storage self, uint96 key, Level storage level) private {
        uint96 prev = level.prev;
        uint96 next = level.next;
        if (prev == 0) self.head = next;
        else self.levels[prev].next = next;
        if (next != 0) self.levels[next].prev = prev;
        delete self.levels[key];
    }

    /// @dev Restores the invariant below·2 < total <= (below + weight(median))·2.
    function _rebalance(List storage self) private {
        uint64 total = self.total;
        if (total == 0) {
            self.median = 0;
            self.below = 0;
            return;
        }
        uint96 median = self.median;
        uint256 below = self.below;
        if (median == 0) {
            median = self.head;
            below = 0;
        }
        // each loop stops on a level: weight lies beyond the pointer while it moves
        while (2 * (below + self.levels[median].weight) < total) {
            below += self.levels[median].weight;
            median = self.levels[median].next;
        }
        while (2 * below >= total) {
            median = self.levels[median].prev;
            below -= self.levels[median].weight;
        }
        self.median = median;
        self.below = uint64(below);
    }
}

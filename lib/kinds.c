/* SPDX-License-Identifier: MIT */
/*
 * kinds.c - the table of future kinds: each kind's operations, defined in
 * the file of the call that makes that kind (internal.h lists them), so
 * that future.c dispatches on the table and knows no kind by name.
 */
#include "internal.h"

const gather__future_ops *const gather__kinds[GATHER__KINDS] = {
    [GATHER__TASK] = &gather__task_ops,
    [GATHER__CHUNK] = &gather__chunk_ops,
    [GATHER__TASK_EX] = &gather__task_ex_ops,
    [GATHER__THEN] = &gather__then_ops,
    [GATHER__AGGREGATE] = &gather__aggregate_ops,
    [GATHER__MAP] = &gather__map_ops,
};

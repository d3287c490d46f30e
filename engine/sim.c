/* benchrun sim — being built (issue 3). */
#include "benchrun/runtime.h"
#include <stdio.h>

int br_sim_main(int argc, char **argv) {
  fprintf(stderr, "benchrun sim: not built yet\n");
  return 2;
}

/* The empty scenario: the runtime alone (subtracted from the others). */
int scenario(void) { return 0; }

/* dotenv_dump: what sfs_dotenv_parse makes of each file named on stdin, in godump.go's
 * format ("FILE ok" then " HEX(NAME)=HEX(VALUE)" per entry in name order, or
 * "FILE refused"; "FILE refused (size limit)" when only secretfs's cap on variable
 * expansion refused it: run.sh leaves those files out of the comparison). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/secmem.h"
#include "secrets/dotenv.h"

static void put_hex(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

int main(void)
{
    static char buf[1 << 20];
    char name[4096];

    if (sfs_crypto_init() != 0)
        return 1;
    while (fgets(name, sizeof name, stdin)) {
        struct sfs_err err;
        sfs_set *set = NULL;
        size_t n;
        FILE *f;

        name[strcspn(name, "\n")] = '\0';
        f = fopen(name, "rb");
        if (!f) {
            perror(name);
            return 1;
        }
        n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (sfs_dotenv_parse(buf, n, "dump", &set, NULL, NULL, &err) != 0) {
            /* secretfs's own limit on expansion, beyond godotenv (secrets/dotenv.h) */
            printf("%s refused%s\n", name, strstr(err.msg, " MiB beyond the file's size")
                                                ? " (size limit)" : "");
            continue;
        }
        printf("%s ok\n", name);
        for (size_t i = 0; i < sfs_set_count(set); i++) {
            const sfs_entry *e = sfs_set_at(set, i);
            putchar(' ');
            put_hex((const unsigned char *)e->name, strlen(e->name));
            putchar('=');
            put_hex(e->value, e->len);
            putchar('\n');
        }
        sfs_set_free(set);
    }
    return 0;
}

from seqtag.console import main

main()

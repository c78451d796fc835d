from tajiri_live.cli import main

main()
